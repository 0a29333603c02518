"""The core's ``interp-steer`` subcommands, one module each.

A subcommand module (here, or a study's ``cli.py``) has ``add_parser(subparsers)``: it adds its
parser, sets ``handler`` (``args -> exit code``) with ``set_defaults`` and returns the parser.
:mod:`interp_steer.cli` only assembles them. Handlers import what they need when they run, so
``interp-steer --help`` stays fast.
"""
