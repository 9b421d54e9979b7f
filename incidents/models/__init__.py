"""Incident response models (manual: "Incident Response")."""
from .oncall import OnCallOverride, OnCallRota, OnCallRotaMember

__all__ = ["OnCallOverride", "OnCallRota", "OnCallRotaMember"]
