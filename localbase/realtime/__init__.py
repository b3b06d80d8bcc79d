"""Supabase Realtime (Phoenix vsn 1.0.0) over logical decoding: ``/realtime/v1/websocket``."""

from localbase.realtime.service import RealtimeService

__all__ = ["RealtimeService"]
