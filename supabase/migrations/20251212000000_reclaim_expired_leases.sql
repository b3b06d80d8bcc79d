-- Reclaiming a task whose worker stopped renewing its lease (crashed, killed, cut off):
--   * a task the user asked to cancel ends `cancelled` instead of running again;
--   * a task out of attempts ends `failed` with a reason naming the attempts;
--   * otherwise the new attempt starts from zero progress with a message saying it is a retry,
--     so a viewer never shows the dead attempt's progress as the new one's.
-- Same signature as before, so `create or replace` keeps the grants (service_role only).

create or replace function public.claim_task(p_worker_id text, p_lease_seconds integer default 30)
  returns setof public.tasks
  language plpgsql
  set search_path = ''
as $$
declare
  v_id uuid;
begin
  update public.tasks t
     set status = 'cancelled',
         message = 'cancelled',
         lease_expires_at = null,
         finished_at = clock_timestamp()
   where t.id in (
     select s.id from public.tasks s
      where s.status = 'processing'
        and s.lease_expires_at < clock_timestamp()
        and s.cancel_requested
      for update skip locked
   );

  update public.tasks t
     set status = 'failed',
         error_message = format(
           'the worker stopped responding %s times (attempt %s of %s); giving up',
           t.attempts, t.attempts, t.max_attempts),
         lease_expires_at = null,
         finished_at = clock_timestamp()
   where t.id in (
     select s.id from public.tasks s
      where s.status = 'processing'
        and s.lease_expires_at < clock_timestamp()
        and s.attempts >= s.max_attempts
      for update skip locked
   );

  select t.id into v_id
    from public.tasks t
   where (t.status = 'pending' and not t.cancel_requested)
      or (t.status = 'processing'
          and t.lease_expires_at < clock_timestamp()
          and t.attempts < t.max_attempts
          and not t.cancel_requested)
   order by t.created_at, t.id
   limit 1
   for update skip locked;

  if v_id is null then
    return;
  end if;

  return query
  update public.tasks t
     set status = 'processing',
         attempts = t.attempts + 1,
         worker_id = p_worker_id,
         lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds),
         started_at = coalesce(t.started_at, clock_timestamp()),
         progress = case when t.status = 'processing' then 0 else t.progress end,
         message = case
           when t.status = 'processing' then format(
             'the previous worker stopped responding; retrying (attempt %s of %s)',
             t.attempts + 1, t.max_attempts)
           else t.message
         end,
         error_message = null
   where t.id = v_id
  returning t.*;
end
$$;
