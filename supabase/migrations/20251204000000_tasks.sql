-- Tasks that users submit and workers run, their results, and the worker rpc functions.
-- Plain SQL for localbase and for `supabase db push` alike: the auth schema, the roles and the
-- supabase_realtime publication already exist on both, so nothing here creates them.

create table public.tasks (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  kind text not null,
  params jsonb not null default '{}'::jsonb,
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'completed', 'failed', 'cancelled')),
  progress smallint not null default 0 check (progress between 0 and 100),
  message text,
  result_id uuid,
  error_message text,
  attempts integer not null default 0,
  max_attempts integer not null default 3 check (max_attempts between 1 and 10),
  worker_id text,
  lease_expires_at timestamptz,
  cancel_requested boolean not null default false,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);

comment on column public.tasks.updated_at is
  'set by a trigger on every update; strictly increasing per row, so versions can be ordered';

create index tasks_user_id_created_at_idx on public.tasks (user_id, created_at desc);
create index tasks_claimable_idx on public.tasks (created_at)
  where status in ('pending', 'processing');

create table public.task_results (
  id uuid primary key default gen_random_uuid(),
  task_id uuid not null references public.tasks (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  payload jsonb not null,
  created_at timestamptz not null default now()
);

create index task_results_task_id_idx on public.task_results (task_id);

-- updated_at: clock time, but always at least one microsecond after the previous version,
-- even for two updates within one transaction or a clock step backwards.
create function public.tasks_set_updated_at() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  new.updated_at := greatest(clock_timestamp(), old.updated_at + interval '1 microsecond');
  return new;
end
$$;

create trigger tasks_set_updated_at
  before update on public.tasks
  for each row execute function public.tasks_set_updated_at();

-- Row level security: users see their own rows and may only submit new pending tasks.
-- There are no update or delete policies, so users can never change status, progress or
-- results; service_role bypasses RLS (directly or through the rpc functions below).
alter table public.tasks enable row level security;
alter table public.task_results enable row level security;

create policy "users see their own tasks"
  on public.tasks for select
  to anon, authenticated
  using (user_id = auth.uid());

create policy "users submit their own pending tasks"
  on public.tasks for insert
  to anon, authenticated
  with check (
    user_id = auth.uid()
    and status = 'pending'
    and progress = 0
    and attempts = 0
    and message is null
    and result_id is null
    and error_message is null
    and worker_id is null
    and lease_expires_at is null
    and cancel_requested = false
    and started_at is null
    and finished_at is null
  );

create policy "users see their own results"
  on public.task_results for select
  to anon, authenticated
  using (user_id = auth.uid());

-- TRUNCATE is not subject to RLS; nobody but the owner and service_role needs it.
revoke truncate on public.tasks, public.task_results from anon, authenticated;

-- Realtime postgres_changes for tasks.
alter publication supabase_realtime add table public.tasks;

-- Worker rpc functions. They run as the caller (service_role, which bypasses RLS).

-- Claim the oldest pending task, or a processing one whose worker's lease ran out and that
-- has attempts left. Returns 0 or 1 rows. Tasks whose lease ran out with no attempts left
-- are failed on the way.
create function public.claim_task(p_worker_id text, p_lease_seconds integer default 30)
  returns setof public.tasks
  language plpgsql
  set search_path = ''
as $$
declare
  v_id uuid;
begin
  update public.tasks t
     set status = 'failed',
         error_message = format('the worker stopped responding %s times; giving up', t.attempts),
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
          and t.attempts < t.max_attempts)
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
         error_message = null
   where t.id = v_id
  returning t.*;
end
$$;

-- Record progress and renew the lease; returns cancel_requested. Raises PT409 (HTTP 409
-- through PostgREST) when the worker no longer owns the task.
create function public.report_progress(
  p_task_id uuid,
  p_worker_id text,
  p_progress integer,
  p_message text default null,
  p_lease_seconds integer default 30
)
  returns boolean
  language plpgsql
  set search_path = ''
as $$
declare
  v_cancel boolean;
begin
  update public.tasks t
     set progress = greatest(0, least(100, p_progress)),
         message = p_message,
         lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds)
   where t.id = p_task_id
     and t.worker_id = p_worker_id
     and t.status = 'processing'
  returning t.cancel_requested into v_cancel;

  if not found then
    raise exception 'task % is not being processed by worker %', p_task_id, p_worker_id
      using errcode = 'PT409', hint = 'the lease may have expired and another worker claimed it';
  end if;
  return v_cancel;
end
$$;

-- Store the result and mark the task completed.
create function public.complete_task(
  p_task_id uuid,
  p_worker_id text,
  p_result jsonb,
  p_message text default null
)
  returns public.tasks
  language plpgsql
  set search_path = ''
as $$
declare
  v_task public.tasks;
  v_result_id uuid;
begin
  select * into v_task from public.tasks t where t.id = p_task_id for update;
  if not found or v_task.status <> 'processing' or v_task.worker_id is distinct from p_worker_id then
    raise exception 'task % is not being processed by worker %', p_task_id, p_worker_id
      using errcode = 'PT409', hint = 'the lease may have expired and another worker claimed it';
  end if;

  insert into public.task_results (task_id, user_id, payload)
  values (p_task_id, v_task.user_id, coalesce(p_result, 'null'::jsonb))
  returning id into v_result_id;

  update public.tasks t
     set status = 'completed',
         progress = 100,
         message = coalesce(p_message, t.message),
         result_id = v_result_id,
         error_message = null,
         lease_expires_at = null,
         finished_at = clock_timestamp()
   where t.id = p_task_id
  returning * into v_task;
  return v_task;
end
$$;

-- Mark the task failed with a readable reason.
create function public.fail_task(p_task_id uuid, p_worker_id text, p_error text)
  returns public.tasks
  language plpgsql
  set search_path = ''
as $$
declare
  v_task public.tasks;
begin
  update public.tasks t
     set status = 'failed',
         error_message = coalesce(p_error, 'failed'),
         lease_expires_at = null,
         finished_at = clock_timestamp()
   where t.id = p_task_id
     and t.worker_id = p_worker_id
     and t.status = 'processing'
  returning * into v_task;

  if not found then
    raise exception 'task % is not being processed by worker %', p_task_id, p_worker_id
      using errcode = 'PT409', hint = 'the lease may have expired and another worker claimed it';
  end if;
  return v_task;
end
$$;

-- Only service_role may run the worker functions (Supabase's default privileges grant
-- execute on new functions to anon and authenticated, so revoke explicitly).
revoke execute on function public.claim_task(text, integer) from public, anon, authenticated;
revoke execute on function public.report_progress(uuid, text, integer, text, integer)
  from public, anon, authenticated;
revoke execute on function public.complete_task(uuid, text, jsonb, text)
  from public, anon, authenticated;
revoke execute on function public.fail_task(uuid, text, text) from public, anon, authenticated;
revoke execute on function public.tasks_set_updated_at() from public, anon, authenticated;

grant execute on function public.claim_task(text, integer) to service_role;
grant execute on function public.report_progress(uuid, text, integer, text, integer) to service_role;
grant execute on function public.complete_task(uuid, text, jsonb, text) to service_role;
grant execute on function public.fail_task(uuid, text, text) to service_role;
