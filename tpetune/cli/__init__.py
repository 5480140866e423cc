"""The command line: parse flags, build the library's option objects, call, print, return an
exit code. main.py holds the parser and main(); search.py the tuning commands; migrate.py
import/best-model/replay."""
