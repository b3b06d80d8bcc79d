// supabase-js against localbase: anonymous and email sign-in, insert + query a task,
// and an UPDATE received over realtime. Prints one JSON line of findings; exits 1 on failure.
//
//   SUPABASE_URL=... SUPABASE_KEY=<publishable> SUPABASE_SECRET_KEY=<secret> node client_roundtrip.mjs
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const url = process.env.SUPABASE_URL;
const key = process.env.SUPABASE_KEY;
const secretKey = process.env.SUPABASE_SECRET_KEY;
const options = {
  auth: { persistSession: false, autoRefreshToken: false },
  realtime: {
    transport: WebSocket, // Node 20 has no global WebSocket
    // realtime-js defaults to the Phoenix V2 array framing; localbase speaks vsn 1.0.0 so far.
    vsn: process.env.REALTIME_VSN ?? "1.0.0",
  },
};

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function check(result, what) {
  if (result.error) throw new Error(`${what}: ${JSON.stringify(result.error)}`);
  return result.data;
}

async function main() {
  const out = {};
  const user = createClient(url, key, options);
  const admin = createClient(url, secretKey, options);

  const anonymous = check(await user.auth.signInAnonymously(), "signInAnonymously");
  out.anonymous = anonymous.user.is_anonymous;

  const task = check(
    await user.from("tasks").insert({ kind: "demo", params: { from: "js" } }).select().single(),
    "insert",
  );
  out.task_user_is_me = task.user_id === anonymous.user.id;
  const fetched = check(
    await user.from("tasks").select("id, kind, params").eq("id", task.id).single(),
    "select",
  );
  out.fetched = fetched;
  const counted = await user.from("tasks").select("id", { count: "exact", head: true });
  out.count = counted.count;

  const updates = [];
  let gotUpdate;
  const updated = new Promise((resolve) => (gotUpdate = resolve));
  let postgresReady;
  const ready = new Promise((resolve) => (postgresReady = resolve));
  const channel = user
    .channel(`task:${task.id}`)
    .on(
      "postgres_changes",
      { event: "UPDATE", schema: "public", table: "tasks", filter: `id=eq.${task.id}` },
      (payload) => {
        updates.push(payload);
        gotUpdate(payload);
      },
    )
    .on("system", {}, (message) => {
      if (message.extension === "postgres_changes" && message.status === "ok") postgresReady();
    });
  const subscribed = new Promise((resolve, reject) =>
    channel.subscribe((status, err) => {
      if (status === "SUBSCRIBED") resolve();
      else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT") reject(err ?? new Error(status));
    }),
  );
  await withTimeout(subscribed, 10000, "SUBSCRIBED");
  await withTimeout(ready, 10000, "the postgres_changes system message");

  check(
    await admin.from("tasks").update({ message: "hello from js" }).eq("id", task.id),
    "service update",
  );
  const change = await withTimeout(updated, 10000, "the UPDATE over realtime");
  out.change = {
    eventType: change.eventType,
    id: change.new.id,
    message: change.new.message,
    old_id: change.old.id,
  };

  const email = `js-${Date.now()}-${Math.random().toString(16).slice(2)}@example.com`;
  const emailUser = createClient(url, key, options);
  const signedUp = check(await emailUser.auth.signUp({ email, password: "js-password-1" }), "signUp");
  out.signed_up_with_session = signedUp.session !== null;
  const wrong = await emailUser.auth.signInWithPassword({ email, password: "nope-nope" });
  out.wrong_password = { code: wrong.error?.code, status: wrong.error?.status };
  const signedIn = check(
    await emailUser.auth.signInWithPassword({ email, password: "js-password-1" }),
    "signInWithPassword",
  );
  out.same_user = signedIn.user.id === signedUp.user.id;

  await user.removeAllChannels();
  await user.auth.signOut();
  await emailUser.auth.signOut();
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error?.stack ?? String(error));
    process.exit(1);
  },
);
