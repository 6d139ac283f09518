#!/usr/bin/env node
// Browser test of the dashboard (issue 14, static/dashboard.html): headless
// Chromium through playwright-core against a server the Rust test has
// filled with real chats (tests/browser.rs).
//
// Usage: node browser_dashboard.mjs http://127.0.0.1:PORT SCREENSHOT_DIR
//
// Environment: CHROMIUM (default /usr/bin/chromium); TEACHER_TOKEN,
// ADMIN_TOKEN, STUDENT_TOKEN (minted with the server's secret); EXPECT, the
// figures the server must show as JSON: {"chats": n, "waitMedian": text,
// "lengthMedian": text, "perTeacher": {"name": chats, …}, "waiting": n,
// "waits": n (chats with a known wait)}.
//
// What a user would notice: a teacher signed in with #token= sees its name,
// the headline figures (chats, median wait, median chat length), the live
// counts, the queue length line ending at the students waiting now, a bar
// per teacher with its chats, and a wait histogram holding every wait; a
// student who gets in line meanwhile shows up within a poll (10 s) in the
// live count and at the end of the queue line; an admin sees the same
// figures; a student is told the page is not for students; the teacher
// page's header links to the dashboard, which then signs in as that teacher.
// Every wait is bounded; prints PASS and exits 0. A screenshot of the
// dashboard goes to SCREENSHOT_DIR/dashboard.png.

import {mkdirSync} from "node:fs"
import {join} from "node:path"
import {chromium} from "playwright-core"
import {STEP_TIMEOUT_MS, fail, ok, run, sleep, step, waitText} from "./harness.mjs"

const [base, shotDir] = process.argv.slice(2)
if(!base || !shotDir){
  console.error("usage: node browser_dashboard.mjs http://127.0.0.1:PORT SCREENSHOT_DIR")
  process.exit(2)
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium"
const {TEACHER_TOKEN, ADMIN_TOKEN, STUDENT_TOKEN} = process.env
const EXPECT = JSON.parse(process.env.EXPECT || "null")
if(!TEACHER_TOKEN || !ADMIN_TOKEN || !STUDENT_TOKEN || !EXPECT){
  console.error("TEACHER_TOKEN, ADMIN_TOKEN, STUDENT_TOKEN and EXPECT are required")
  process.exit(2)
}
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
const OVERALL_TIMEOUT_MS = 90000
// One poll is 10 s: what arrives between two polls shows within that (and a margin).
const POLL_TIMEOUT_MS = 16000
const LAPTOP = {width: 1280, height: 1000}

const problems = run.problems
let browser = null

async function waitAttribute(locator, name, expected, what, ms = STEP_TIMEOUT_MS){
  const deadline = Date.now() + ms
  let last = null
  while(Date.now() < deadline){
    try { last = await locator.getAttribute(name, {timeout: Math.max(1, deadline - Date.now())}) } catch {}
    if(last === expected) return
    await sleep(50)
  }
  await fail(`${what}: expected ${name}=${JSON.stringify(expected)}, last saw ${JSON.stringify(last)}`)
}

// `allowed`: console errors this page provokes on purpose (RegExp list).
async function openPage(path, label, allowed = []){
  const context = await browser.newContext({viewport: LAPTOP})
  const page = await context.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  page.on("pageerror", (err) => problems.push(`${label}: page error: ${err.message}`))
  page.on("console", (msg) => {
    if(msg.type() !== "error" || allowed.some((pattern) => pattern.test(msg.text()))) return
    problems.push(`${label}: console error: ${msg.text()}`)
  })
  const response = await page.goto(new URL(path, base).href)
  if(!response || response.status() !== 200) await fail(`${label}: GET ${path} answered ${response?.status()}`)
  return {page, context, label}
}

const figure = (d, name) => d.page.locator(`[data-figure="${name}"]`)

// The headline figures, the per-teacher bars and the wait histogram as EXPECT says.
async function expectFigures(d, who){
  await waitText(figure(d, "chats"), String(EXPECT.chats), `${who}: chats`)
  await waitText(figure(d, "wait-median"), EXPECT.waitMedian, `${who}: median wait`)
  await waitText(figure(d, "length-median"), EXPECT.lengthMedian, `${who}: median chat length`)
  for(const [teacher, chats] of Object.entries(EXPECT.perTeacher)){
    const bar = d.page.locator(`#chart-teachers rect.chart-bar[data-label="${teacher}"]`)
    await waitAttribute(bar, "data-value", String(chats), `${who}: ${teacher}'s bar`)
  }
  const bars = await d.page.locator("#chart-teachers rect.chart-bar").count()
  if(bars !== Object.keys(EXPECT.perTeacher).length) await fail(`${who}: ${bars} teacher bars, expected ${Object.keys(EXPECT.perTeacher).length}`)
  const waits = await d.page.locator("#chart-waits rect.chart-bar").evaluateAll((rects) => rects.reduce((n, r) => n + Number(r.dataset.value), 0))
  if(waits !== EXPECT.waits) await fail(`${who}: the wait histogram holds ${waits} waits, expected ${EXPECT.waits}`)
  const label = await d.page.locator("#chart-teachers svg").getAttribute("aria-label")
  if(!/Chats per teacher: /.test(label || "")) await fail(`${who}: the teachers chart has no words: ${label}`)
  ok(`${who}: ${EXPECT.chats} chats, median wait ${EXPECT.waitMedian}, bars ${JSON.stringify(EXPECT.perTeacher)}, ${waits} waits in the histogram`)
}

async function main(){
  browser = run.browser = await chromium.launch({executablePath: CHROMIUM, args: CHROMIUM_ARGS})
  mkdirSync(shotDir, {recursive: true})

  step("teacher", "a teacher opens /dashboard with #token=")
  const d = await openPage(`/dashboard#token=${TEACHER_TOKEN}`, "teacher dashboard")
  await waitText(d.page.locator("#me"), "Ms Stats", "the teacher's name in the header")
  await waitText(d.page.locator("#connection"), "Live", "the dashboard's status")
  if(d.page.url().includes("token=")) await fail("the token stays in the address bar")
  await expectFigures(d, "teacher")
  await waitText(figure(d, "live-waiting"), String(EXPECT.waiting), "live waiting")
  await waitAttribute(d.page.locator("#chart-queue circle.chart-dot"), "data-value", String(EXPECT.waiting), "the queue line ends at the students waiting now")
  if(await d.page.locator("#chart-queue path.chart-line").count() !== 1) await fail("no queue length line")
  await waitText(d.page.locator("#updated"), /^Updated .*refreshes every 10 s\.$/, "when it was updated")
  await d.page.screenshot({path: join(shotDir, "dashboard.png"), fullPage: true})
  ok("screenshot dashboard.png")

  step("live", "a student gets in line: the next poll shows one more waiting")
  const zed = await openPage("/student?name=Zed", "student Zed")
  await waitText(zed.page.locator("#connection"), "Connected", "Zed's connection")
  // The student page asks for a question first; "Get in line" queues.
  await zed.page.getByRole("button", {name: "Get in line"}).click()
  const more = String(EXPECT.waiting + 1)
  await waitText(figure(d, "live-waiting"), more, "live waiting after Zed got in line", POLL_TIMEOUT_MS)
  await waitAttribute(d.page.locator("#chart-queue circle.chart-dot"), "data-value", more, "the queue line's last sample", POLL_TIMEOUT_MS)
  ok(`live waiting ${more}, and the queue line ends there`)

  step("admin", "an admin sees the same figures")
  const admin = await openPage(`/dashboard#token=${ADMIN_TOKEN}`, "admin dashboard")
  await waitText(admin.page.locator("#me"), "Ada Admin", "the admin's name")
  await expectFigures(admin, "admin")
  await admin.context.close()

  step("student", "a student is told the dashboard is not for students")
  const student = await openPage(`/dashboard#token=${STUDENT_TOKEN}`, "student dashboard", [/status of 403/])
  await waitText(student.page.locator("#not-for-you"), /for teachers and admins; you are signed in as a student/, "the refusal")
  await waitText(student.page.locator("#main a"), "Back to the student page", "the way back")
  if(await student.page.locator("#chart-teachers").count() !== 0) await fail("a student sees the charts")
  ok("refused, with a link back")
  await student.context.close()

  step("link", "the teacher page's header links to the dashboard, signed in as that teacher")
  const t = await openPage(`/teacher#token=${TEACHER_TOKEN}`, "teacher page")
  await waitText(t.page.locator("#me"), "Ms Stats", "the teacher page's name")
  await t.page.getByRole("link", {name: "Dashboard"}).click()
  await t.page.waitForURL(/\/dashboard$/)
  await waitText(t.page.locator("#me"), "Ms Stats", "the dashboard reached by the link")
  await waitText(figure(t, "chats"), String(EXPECT.chats), "chats on the dashboard reached by the link")
  ok("the link leads to the dashboard as the same teacher")

  if(problems.length) await fail(`page problems:\n  ${problems.join("\n  ")}`)
  run.finished = true
  await browser.close()
  console.log("PASS")
}

setTimeout(() => fail(`overall timeout of ${OVERALL_TIMEOUT_MS} ms`), OVERALL_TIMEOUT_MS).unref()
main().catch((error) => fail(error?.stack || String(error)))
