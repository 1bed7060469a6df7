// jsforce through Latchkey's proxy, with a proxy-only key: the script never holds a Salesforce
// token. Latchkey injects it, and when Salesforce answers that the session expired it refreshes
// once and retries, so the script does not notice.
//
//   LATCHKEY_URL=http://127.0.0.1:8080 LATCHKEY_API_KEY=lk_… node jsforce-example.mjs acme sf-prod
import jsforce from "jsforce";

export function salesforce(latchkeyUrl, apiKey, workspace, connection) {
  return new jsforce.Connection({
    // jsforce appends /services/data/vXX.X/… to the instance URL, path included.
    instanceUrl: `${latchkeyUrl.replace(/\/+$/, "")}/v1/workspaces/${encodeURIComponent(workspace)}/connections/${encodeURIComponent(connection)}/proxy`,
    // The Latchkey key goes where a Salesforce access token would; Latchkey swaps it for the token.
    accessToken: apiKey,
    version: "62.0",
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [workspace, connection] = process.argv.slice(2);
  const conn = salesforce(process.env.LATCHKEY_URL ?? "http://127.0.0.1:8080", process.env.LATCHKEY_API_KEY, workspace, connection);
  const accounts = await conn.query("SELECT Id, Name FROM Account");
  console.log(`${accounts.totalSize} accounts`);
  const limits = await conn.limits();
  console.log("daily API requests left:", limits.DailyApiRequests.Remaining);
}
