"""What the management commands share."""
import getpass
import os


def command_actor() -> str:
    """The audit actor for a command run from a shell: `cli:<login>`."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = os.environ.get("USER", "unknown")
    return f"cli:{login}"
