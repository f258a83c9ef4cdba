"""train.py's command line, built from configs.SETTINGS: its flags, their checks, and the
refusals (--resume, --init-from) that keep a run from mixing settings that do not go together."""
import argparse
import math
import sys
from types import SimpleNamespace

from configs import PRESETS, SETTINGS, preset_values

GROUPS = {"data": "data",
          "training": "training (defaults: the --preset's settings in configs.py)",
          "scale": "several GPUs or machines, speed (README: GPUs and several machines)"}


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative_float(text):
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):  # inf would only show up later, as a NaN loss
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def yes_no(text):
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"must be yes or no, got {text}")
    return text == "yes"


TYPES = {"int": int, "positive_int": positive_int, "positive_float": positive_float,
         "non_negative_float": non_negative_float, "fraction": fraction, "yes_no": yes_no}


def flag(setting):
    return "--" + setting.name.replace("_", "-")


def shown(value):
    return ("yes" if value else "no") if isinstance(value, bool) else value


def help_of(setting):
    """The setting's help, with its default at the end unless the help already says it."""
    text = setting.help.format(**{preset: SimpleNamespace(**preset_values(preset)) for preset in PRESETS})
    if setting.name == "resume":
        anew = [flag(s) for s in SETTINGS if s.anew]
        text += f" ({', '.join(anew[:-1])} and {anew[-1]} may be given anew)"
    if "(default" in setting.help or setting.default in (None, False):
        return text
    if not isinstance(setting.default, dict):
        return f"{text} (default %(default)s)"
    default = shown(setting.default["default"])
    others = [f"{preset} preset: {shown(setting.default[preset])}" for preset in PRESETS[1:]
              if preset in setting.default and setting.default[preset] != setting.default["default"]]
    return f"{text} (default: {', '.join([str(default)] + others)})"


def add_flag(group, setting):
    """One setting's flag. A setting with a value per preset is None when not given: the preset
    (or the model --init-from names) decides."""
    options = {"help": help_of(setting), "metavar": setting.metavar,
               "default": None if isinstance(setting.default, dict) else setting.default}
    if setting.type in ("flag", "append"):
        action = {"flag": "store_true", "append": "append"}[setting.type]
        group.add_argument(flag(setting), action=action, help=options["help"],
                           **({"metavar": setting.metavar} if setting.type == "append" else {}))
        return
    if setting.type == "yes_no":
        options["metavar"] = "{yes,no}"
    group.add_argument(flag(setting), type=TYPES.get(setting.type), choices=setting.choices, **options)


def build_parser(description=None):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {name: parser.add_argument_group(title) for name, title in GROUPS.items()}
    for setting in SETTINGS:
        if setting.group:
            add_flag(groups[setting.group], setting)
    return parser


def given(flags, argv):
    return [f for f in flags if any(a == f or a.startswith(f + "=") for a in argv)]


def parse_train_args(argv=None, description=None):
    """train.py's command line, checked: one line naming the flag for each mistake."""
    parser = build_parser(description)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    for setting in SETTINGS:
        if setting.renamed and getattr(args, setting.name, None) in setting.renamed:
            setattr(args, setting.name, setting.renamed[getattr(args, setting.name)])
    if args.resume:
        clashes = given([flag(s) for s in SETTINGS if s.group and not s.anew and s.name != "resume"], argv)
        if clashes:
            parser.error(f"--resume goes on with the run's own data and settings; drop {' '.join(clashes)}")
    if args.init_from:
        clashes = given(["--preset", "--architecture", "--keep-aspect-ratio"], argv)
        if clashes:
            parser.error(f"--init-from trains the starting model's architecture at its input size; drop {' '.join(clashes)}")
    if args.train_csv and args.data_dir:
        parser.error("--train-csv names the training images itself; drop --data-dir (or --train-csv, to use DIR/labels.csv)")
    if args.minutes and args.strategy == "multiworker":
        parser.error("--minutes cannot be used with --strategy multiworker: each worker's clock would stop it at "
                     "a different batch; use --epochs")
    return args
