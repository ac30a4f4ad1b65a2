"""The command line: ``main.py`` runs a subcommand and is the only place that exits the process;
``arguments.py`` builds the parser and turns flags into what the commands need; each subcommand
has its module (serve, sign, demo with emulate, health).
"""
