"""Cloud Functions entry module: re-exports each entry point under its own name, nothing else.

The exported name, the function's __name__, its functions/<name>/ folder and its Terraform
entry_point are the same string: functions-framework resolves the signature type by __name__.
"""

from functions.build_report.main import build_report
from functions.build_segments.main import build_segments
from functions.collect.main import collect
from functions.deliver.main import deliver
from functions.discover.main import discover
from functions.email_feedback.main import email_feedback
from functions.load_dead_letters.main import load_dead_letters
from functions.load_events.main import load_events
from functions.nhn_status.main import nhn_status
from functions.preferences.main import preferences
from functions.privacy_requests.main import privacy_requests
from functions.publish_audiences.main import publish_audiences
from functions.refine.main import refine
from functions.send_messages.main import send_messages
from functions.sync_schedules.main import sync_schedules
from functions.twilio_status.main import twilio_status
from functions.validate_config.main import validate_config

__all__ = [
    "build_report",
    "build_segments",
    "collect",
    "deliver",
    "discover",
    "email_feedback",
    "load_dead_letters",
    "load_events",
    "nhn_status",
    "preferences",
    "privacy_requests",
    "publish_audiences",
    "refine",
    "send_messages",
    "sync_schedules",
    "twilio_status",
    "validate_config",
]
