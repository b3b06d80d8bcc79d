"""Tasklight services: settings, models, Supabase session, TaskContext, worker and jobs.

Nothing in this package imports NiceGUI; the UI binds to what these objects expose.
"""
