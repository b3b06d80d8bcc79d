-- Users submit a task by naming its kind and its parameters; every other column belongs to
-- the system (defaults on insert, the worker functions afterwards). Without this, a user could
-- insert `created_at = '-infinity'` and jump ahead of everybody in the claim order, or pick a
-- large `max_attempts`. Column privileges make the rule hold for every client, REST or SQL.
revoke insert, update, delete on public.tasks from anon, authenticated;
grant insert (kind, params) on public.tasks to anon, authenticated;

revoke insert, update, delete on public.task_results from anon, authenticated;
