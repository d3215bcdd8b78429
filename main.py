"""Cloud Functions entry module: re-exports each entry point under its own name, nothing else.

The exported name, the function's __name__, its functions/<name>/ folder and its Terraform
entry_point are the same string: functions-framework resolves the signature type by __name__.
"""

from functions.collect.main import collect
from functions.load_dead_letters.main import load_dead_letters
from functions.load_events.main import load_events

__all__ = ["collect", "load_dead_letters", "load_events"]
