// Drives the leadsync sandbox with two clients the project does not use itself: jsforce
// (Salesforce) and @hubspot/api-client (HubSpot), both for Node. It prints one JSON object
// of what each call returned; tests/test_second_clients.py asserts on it. Usage:
//   node drive.mjs SANDBOX_URL
import jsforce from "jsforce";
import { Client } from "@hubspot/api-client";

const base = process.argv[2];
const out = { salesforce: {}, hubspot: {} };

async function salesforce() {
  const sf = out.salesforce;
  const conn = new jsforce.Connection({ loginUrl: base, version: "59.0" });
  const user = await conn.login("sandbox@leadsync.test", "sandbox" + "sandbox");
  sf.login = { instanceUrl: conn.instanceUrl, organizationId: user.organizationId };

  // A query read page by page through nextRecordsUrl, 200 a page.
  let page = await conn.request({
    method: "GET",
    url: "/services/data/v59.0/query?q=" + encodeURIComponent("SELECT Id, Email FROM Lead ORDER BY Id"),
    headers: { "Sforce-Query-Options": "batchSize=200" },
  });
  const pages = [page.records.length];
  const ids = page.records.map((r) => r.Id);
  while (!page.done) {
    page = await conn.queryMore(page.nextRecordsUrl);
    pages.push(page.records.length);
    ids.push(...page.records.map((r) => r.Id));
  }
  sf.query = { totalSize: page.totalSize, pages, ids };

  const described = await conn.sobject("Lead").describe();
  sf.describe = {
    fields: described.fields.map((f) => [f.name, f.type]),
    status: described.fields.find((f) => f.name === "Status").picklistValues.map((p) => p.value),
  };

  // A collection update (composite/sobjects) of three open leads, one refused.
  const open = await conn.query("SELECT Id FROM Lead WHERE IsConverted = false ORDER BY Id LIMIT 3");
  const [a, b, c] = open.records.map((r) => r.Id);
  const saved = await conn.sobject("Lead").update(
    [
      { Id: a, Title: "jsforce A" },
      { Id: b, Status: "Not a status" },
      { Id: c, Title: "jsforce C" },
    ],
    { allOrNone: false },
  );
  sf.collection = {
    ids: [a, b, c],
    results: saved.map((r) => ({ id: r.id, success: r.success, errors: r.errors })),
    after: (await conn.query(`SELECT Id, Title FROM Lead WHERE Id IN ('${a}','${c}') ORDER BY Id`)).records.map(
      (r) => [r.Id, r.Title],
    ),
  };

  // Bulk API 2.0: a query job, then an update job, each polled until it completes.
  conn.bulk2.pollInterval = 50;
  conn.bulk2.pollTimeout = 20000;
  const rows = await (await conn.bulk2.query("SELECT Id, Title FROM Lead")).toArray();
  sf.bulkQuery = { rows: rows.length, sample: rows[0] };
  const results = await conn.bulk2.loadAndWaitForResults({
    object: "Lead",
    operation: "update",
    input: [
      { Id: a, Title: "bulk A" },
      { Id: c, Title: "bulk C" },
    ],
    pollInterval: 50,
    pollTimeout: 20000,
  });
  sf.bulkIngest = {
    successful: results.successfulResults.map((r) => r.sf__Id),
    failed: results.failedResults.length,
    after: (await conn.query(`SELECT Id, Title FROM Lead WHERE Id IN ('${a}','${c}') ORDER BY Id`)).records.map(
      (r) => [r.Id, r.Title],
    ),
  };
}

async function hubspot() {
  const hs = out.hubspot;
  const client = new Client({ accessToken: "sandbox-token", basePath: base, numberOfApiCallRetries: 0 });

  // Every contact through the list endpoint's paging.
  const ids = [];
  let after;
  let calls = 0;
  do {
    const page = await client.crm.contacts.basicApi.getPage(100, after, ["email", "lifecyclestage"]);
    calls += 1;
    ids.push(...page.results.map((r) => r.id));
    after = page.paging?.next?.after;
  } while (after);
  hs.list = { ids, calls };

  const properties = await client.crm.properties.coreApi.getAll("contacts");
  hs.properties = properties.results.map((p) => [p.name, p.type]);

  // A batch update that HubSpot accepts, then one it refuses whole for one bad value.
  const [first, second] = ids;
  const updated = await client.crm.contacts.batchApi.update({
    inputs: [
      { id: first, properties: { jobtitle: "Node A" } },
      { id: second, properties: { jobtitle: "Node B" } },
    ],
  });
  hs.batchUpdate = { status: updated.status, ids: updated.results.map((r) => r.id).sort() };
  try {
    await client.crm.contacts.batchApi.update({
      inputs: [
        { id: first, properties: { jobtitle: "Never" } },
        { id: second, properties: { lifecyclestage: "not-a-stage" } },
      ],
    });
    hs.batchRefused = { refused: false };
  } catch (error) {
    hs.batchRefused = { refused: true, code: error.code, body: error.body };
  }

  // A search, sorted and paged.
  const found = await client.crm.contacts.searchApi.doSearch({
    filterGroups: [{ filters: [{ propertyName: "email", operator: "HAS_PROPERTY" }] }],
    sorts: ["hs_object_id"],
    properties: ["email"],
    limit: 5,
    after: "0",
  });
  hs.search = {
    total: found.total,
    ids: found.results.map((r) => r.id),
    properties: Object.keys(found.results[0].properties).sort(),
    next: found.paging?.next?.after,
  };
  const read = await client.crm.contacts.basicApi.getById(first, ["jobtitle"]);
  hs.readBack = read.properties.jobtitle;
}

try {
  await salesforce();
  await hubspot();
} catch (error) {
  out.error = String(error && error.stack ? error.stack : error);
}
process.stdout.write(JSON.stringify(out));
