"""The command line: ``main.py`` parses the arguments and is the only place that exits the
process; each subcommand has its module (serve, sign, demo with emulate, health).
"""
