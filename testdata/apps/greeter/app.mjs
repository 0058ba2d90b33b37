// Greeter: a minimal DBOS TypeScript app (plain ESM, no build step) used as a
// Hangar end-to-end fixture. GET /greet/:name runs a durable two-step
// workflow: step 1 inserts a row into the app database, step 2 reads it back.
import express from "express";
import pg from "pg";
import { DBOS } from "@dbos-inc/dbos-sdk";

// The SDK only uses the system database; the app database is ours to use.
const pool = new pg.Pool({ connectionString: process.env.DBOS_DATABASE_URL, max: 4 });

async function insertGreeting(name) {
  const { rows } = await pool.query("INSERT INTO greetings (name) VALUES ($1) RETURNING id", [name]);
  return rows[0].id;
}

async function readGreeting(id) {
  const { rows } = await pool.query("SELECT id, name FROM greetings WHERE id = $1", [id]);
  if (rows.length === 0) {
    throw new Error(`greeting ${id} not found`);
  }
  const { name } = rows[0];
  return { id: rows[0].id, name, message: `Hello, ${name}!` };
}

async function greetWorkflowFn(name) {
  const id = await DBOS.runStep(() => insertGreeting(name), { name: "insertGreeting" });
  return await DBOS.runStep(() => readGreeting(id), { name: "readGreeting" });
}
const greetWorkflow = DBOS.registerWorkflow(greetWorkflowFn, { name: "greetWorkflow" });

const app = express();

app.get("/", (_req, res) => {
  res.type("text/plain").send("greeter v1");
});

app.get("/healthz", (_req, res) => {
  res.type("text/plain").send("ok");
});

app.get("/greet/:name", async (req, res, next) => {
  try {
    const handle = await DBOS.startWorkflow(greetWorkflow)(req.params.name);
    const result = await handle.getResult();
    console.log(`greeted ${result.name} (greeting ${result.id})`);
    res.json({
      workflowID: handle.workflowID,
      id: result.id,
      name: result.name,
      message: result.message,
      version: process.env.DBOS__APPVERSION,
      executor: process.env.DBOS__VMID,
    });
  } catch (err) {
    next(err);
  }
});

// GET /greetings lists the stored greetings, oldest first; DELETE
// /greetings/:id removes one. Tests use them to see the app's data.
app.get("/greetings", async (_req, res, next) => {
  try {
    const { rows } = await pool.query("SELECT id, name FROM greetings ORDER BY id");
    res.json(rows);
  } catch (err) {
    next(err);
  }
});

app.delete("/greetings/:id", async (req, res, next) => {
  try {
    const { rowCount } = await pool.query("DELETE FROM greetings WHERE id = $1", [req.params.id]);
    res.status(rowCount === 0 ? 404 : 204).end();
  } catch (err) {
    next(err);
  }
});

DBOS.setConfig({ name: "greeter", systemDatabaseUrl: process.env.DBOS_SYSTEM_DATABASE_URL });
await DBOS.launch();

const server = app.listen(3000, "0.0.0.0", () => {
  console.log("greeter listening on 0.0.0.0:3000");
});

// The platform stops executors with SIGTERM; exit promptly and cleanly.
async function shutdown(signal) {
  console.log(`greeter: ${signal}, shutting down`);
  server.close();
  await DBOS.shutdown();
  await pool.end();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
