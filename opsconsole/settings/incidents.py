"""Incident response (manual: "Incident Response"): business hours, response clocks, notifications.

Environment variables:
  BUSINESS_HOURS_DAYS        working days, e.g. "mon-fri" (default) or "mon,tue,wed,thu,fri,sat"
  BUSINESS_HOURS_START/END   local opening and closing time, "09:00" / "17:00"
  BUSINESS_HOURS_TIME_ZONE   zone of the business day (default: TIME_ZONE)
  BUSINESS_HOLIDAYS          comma-separated ISO dates that are not business days
  INCIDENT_P1_RESPONSE_MINUTES  "within minutes" of the manual, made a number (default 5)
  INCIDENT_WEBHOOK_URL       Slack-compatible incoming webhook (or a secret reference: env:, file:, vault:)
  INCIDENT_STAKEHOLDER_EMAILS comma-separated addresses that receive stakeholder communications
  INCIDENT_ESCALATION_INTERVAL_SECONDS how often beat looks for due escalation timers (default 30)
  CONSOLE_BASE_URL           absolute URL of the console, for links in notifications
"""
from .env import env_int, env_str

INCIDENT_BUSINESS_HOURS = {
    "days": env_str("BUSINESS_HOURS_DAYS", "mon-fri"),
    "start": env_str("BUSINESS_HOURS_START", "09:00"),
    "end": env_str("BUSINESS_HOURS_END", "17:00"),
    # None: settings.TIME_ZONE, read when used.
    "time_zone": env_str("BUSINESS_HOURS_TIME_ZONE") or None,
    "holidays": [d.strip() for d in env_str("BUSINESS_HOLIDAYS").split(",") if d.strip()],
}

INCIDENT_P1_RESPONSE_MINUTES = env_int("INCIDENT_P1_RESPONSE_MINUTES", 5)
# Severities whose escalation-matrix intervals count business time rather than wall-clock time
# (the manual's P3/P4 are business-hours incidents; P1/P2 are engaged at all hours).
INCIDENT_BUSINESS_HOURS_SEVERITIES = [s for s in env_str("INCIDENT_BUSINESS_HOURS_SEVERITIES", "P3,P4").split(",") if s]

# Notification channels, in order; each sent notification is recorded (incidents.Notification).
INCIDENT_NOTIFICATION_CHANNELS = [c for c in env_str("INCIDENT_NOTIFICATION_CHANNELS", "console,email,webhook").split(",") if c]
INCIDENT_WEBHOOK_URL = env_str("INCIDENT_WEBHOOK_URL")
INCIDENT_WEBHOOK_TIMEOUT_SECONDS = float(env_int("INCIDENT_WEBHOOK_TIMEOUT_SECONDS", 5))
INCIDENT_STAKEHOLDER_EMAILS = [a.strip() for a in env_str("INCIDENT_STAKEHOLDER_EMAILS").split(",") if a.strip()]
INCIDENT_NOTIFICATION_MAX_ATTEMPTS = env_int("INCIDENT_NOTIFICATION_MAX_ATTEMPTS", 5)
INCIDENT_ESCALATION_INTERVAL_SECONDS = env_int("INCIDENT_ESCALATION_INTERVAL_SECONDS", 30)
INCIDENT_SIGNAL_INTERVAL_SECONDS = env_int("INCIDENT_SIGNAL_INTERVAL_SECONDS", 60)
CONSOLE_BASE_URL = env_str("CONSOLE_BASE_URL", "http://127.0.0.1:8000")
# "Mitigation time exceeded" (an automatic escalation trigger): hours from declaration by which an
# incident should be stabilized (resolved). The manual says mitigation "varies"; these are the console's
# defaults. P3 counts business hours; P4 has its one-week resolution requirement instead.
INCIDENT_MITIGATION_HOURS = {
    "P1": env_int("INCIDENT_MITIGATION_HOURS_P1", 2),
    "P2": env_int("INCIDENT_MITIGATION_HOURS_P2", 4),
    "P3": env_int("INCIDENT_MITIGATION_HOURS_P3", 8),
}
