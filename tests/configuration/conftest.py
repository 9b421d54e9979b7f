"""Fixtures: a copy of the shipped config/ tree to break file by file, operators and viewers."""
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

from configuration.runtime import runtime_reset

SHIPPED = Path(settings.BASE_DIR) / "config"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A writable copy of the shipped configuration."""
    root = tmp_path / "config"
    shutil.copytree(SHIPPED, root)
    return root


@pytest.fixture(autouse=True)
def _fresh_runtime():
    runtime_reset()
    yield
    runtime_reset()


def _user(username: str, group: str | None) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def operator(db) -> User:
    return _user("olivia", "Operations Team")


@pytest.fixture
def viewer(db) -> User:
    return _user("victor", "Viewer")
