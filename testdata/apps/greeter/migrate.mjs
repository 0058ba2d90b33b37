// Creates the app's own table in the application database. The platform runs
// it (database.migrate in dbos-config.yaml) at each deploy with
// DBOS_DATABASE_URL set, so it must be idempotent.
import pg from "pg";

const url = process.env.DBOS_DATABASE_URL;
if (!url) {
  console.error("migrate: DBOS_DATABASE_URL is not set");
  process.exit(1);
}

const client = new pg.Client({ connectionString: url });
await client.connect();
try {
  await client.query(`
    CREATE TABLE IF NOT EXISTS greetings (
      id         serial PRIMARY KEY,
      name       text NOT NULL,
      greeted_at timestamptz DEFAULT now()
    )`);
  console.log("migrate: table greetings is ready");
} finally {
  await client.end();
}
