// The steps and waits shared by the browser tests (browser_pages.mjs,
// browser_dashboard.mjs). A run is a sequence of labelled steps; the first
// check that fails ends it (exit 1), naming the step it was in and the page
// problems (page errors, console errors) seen so far.

export const STEP_TIMEOUT_MS = 8000

// What the run is doing: the step, the browser to close on failure, whether
// it is over, and the page problems collected by the test's listeners.
export const run = {step: "setup", browser: null, finished: false, problems: []}

export async function fail(message){
  if(run.finished) return
  run.finished = true
  console.error(`FAIL [${run.step}]: ${message}`)
  if(run.problems.length) console.error(`page problems so far:\n  ${run.problems.join("\n  ")}`)
  try { await run.browser?.close() } catch {}
  process.exit(1)
}

export function step(label, text){
  run.step = label
  console.log(`[${label}] ${text}`)
}

export function ok(text){ console.log(`    ok: ${text}`) }

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Waits until `locator`'s text (whitespace collapsed, trimmed) equals
// `expected` (string) or matches it (RegExp); fails with the last text seen
// after the timeout.
export async function waitText(locator, expected, what, ms = STEP_TIMEOUT_MS){
  const deadline = Date.now() + ms
  let last = "(element not found)"
  while(Date.now() < deadline){
    try {
      const text = await locator.textContent({timeout: Math.max(1, deadline - Date.now())})
      last = text == null ? "(no text)" : text.replace(/\s+/g, " ").trim()
      if(expected instanceof RegExp ? expected.test(last) : last === expected) return last
    } catch {}
    await sleep(40)
  }
  await fail(`${what}: expected ${expected instanceof RegExp ? expected : JSON.stringify(expected)}, last saw ${JSON.stringify(last)}`)
}
