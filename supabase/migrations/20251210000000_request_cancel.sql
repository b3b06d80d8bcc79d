-- Owners cancel their own tasks. Users have no UPDATE policy on tasks, so this security
-- definer function is their one way to change a row, and it checks ownership itself.
--
-- A pending task ends `cancelled` at once (no worker holds it; claim_task locks rows with
-- FOR UPDATE SKIP LOCKED, so a task being claimed right now is locked and waits for us, then
-- is processing and takes the second path). A processing task gets `cancel_requested`; its
-- worker reads the flag from report_progress, stops the job and ends the task `cancelled`.
-- A finished task is left as it is and returned unchanged.

create function public.request_cancel(p_task_id uuid)
  returns public.tasks
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_task public.tasks;
begin
  select * into v_task from public.tasks t
   where t.id = p_task_id and t.user_id = auth.uid()
   for update;
  if not found then
    raise exception 'task % not found', p_task_id
      using errcode = 'P0002', hint = 'only the owner of a task can cancel it';
  end if;

  if v_task.status = 'pending' then
    update public.tasks t
       set status = 'cancelled',
           cancel_requested = true,
           message = 'cancelled before it started',
           finished_at = clock_timestamp()
     where t.id = p_task_id
    returning * into v_task;
  elsif v_task.status = 'processing' and not v_task.cancel_requested then
    update public.tasks t
       set cancel_requested = true
     where t.id = p_task_id
    returning * into v_task;
  end if;
  return v_task;
end
$$;

revoke execute on function public.request_cancel(uuid) from public, anon;
grant execute on function public.request_cancel(uuid) to authenticated, service_role;
