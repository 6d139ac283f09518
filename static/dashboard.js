// The dashboard (issue 14): the statistics of GET /api/stats for teachers
// and admins, polled every 10 s: the headline figures (chats, median and
// 90th-percentile wait, median chat length), the live counts, and four
// charts drawn by charts.js: the queue length over the last hours (a line of
// the server's one-a-minute samples), the wait histogram, chats per teacher
// and chats by hour.
//
// Sign-in: a token handed in #token= is used whatever its role; else a
// stored admin token, else a stored teacher token, else a stored student
// token (so that a student who opens the page is told it is not for them),
// else a guest teacher sign-in, as the teacher page does. The server
// decides: a 403 says the dashboard is for teachers and admins.

import {claimsOf, clock, displayName, showSignInProblem, signIn, tokenRefused} from "./common.js"
import {barChart, lineChart} from "./charts.js"

const POLL_MS = 10_000
const $ = (id) => document.getElementById(id)

/** Which role's token to sign in with (see the top of this file). */
function roleToUse(){
  const handed = new URLSearchParams(location.hash.slice(1)).get("token")
  const handedRole = handed ? claimsOf(handed)?.role : null
  if(typeof handedRole === "string") return handedRole
  let stored = null
  try { stored = window.localStorage } catch {}
  for(const role of ["admin", "teacher", "student"]){
    if(stored?.getItem(`tutor-queue.token.${role}`)) return role
  }
  return "teacher"
}

const session = await signIn(roleToUse()).catch((error) => {
  showSignInProblem($("connection"), error)
  return null
})
if(!session) await new Promise(() => {})
$("me").textContent = session.name
document.title = `Dashboard (${session.name}) · tutor-queue`

/** "42 s", "3 min 5 s", "1 h 20 min"; "–" for none. */
function duration(ms){
  if(!Number.isFinite(ms)) return "–"
  const s = Math.round(ms / 1000)
  if(s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if(m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`
  const h = Math.floor(m / 60)
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`
}

function bucketLabel(bucket){
  const short = (ms) => (ms < 60_000 ? `${ms / 1000}s` : `${ms / 60_000}m`)
  return bucket.to_ms === null ? `${short(bucket.from_ms)}+` : `<${short(bucket.to_ms)}`
}

function setFigure(id, text){
  $(id).textContent = text
}

function render(stats){
  setFigure("fig-chats", String(stats.chats))
  setFigure("fig-wait-median", duration(stats.wait_ms.median ?? NaN))
  setFigure("fig-wait-p90", duration(stats.wait_ms.p90 ?? NaN))
  setFigure("fig-length-median", duration(stats.chat_length_ms.median ?? NaN))
  setFigure("live-waiting", String(stats.live.waiting))
  setFigure("live-chatting", String(stats.live.chatting))
  setFigure("live-teachers", String(stats.live.teachers))

  const samples = stats.queue_length.map((s) => ({x: s.at, y: s.waiting}))
  const now = samples.length ? samples[samples.length - 1].y : 0
  // Over a few minutes only (a server just started), times need their seconds.
  const short = samples.length > 1 && samples[samples.length - 1].x - samples[0].x < 10 * 60_000
  const time = (ms) => new Date(ms).toLocaleTimeString([], short
    ? {hour: "2-digit", minute: "2-digit", second: "2-digit"}
    : {hour: "2-digit", minute: "2-digit"})
  lineChart($("chart-queue"), samples, {
    label: samples.length
      ? `Queue length over the last ${duration(samples[samples.length - 1].x - samples[0].x)}: ${now} waiting now, at most ${Math.max(...samples.map((s) => s.y))}`
      : "Queue length: no samples yet",
    formatX: time,
    formatY: (v) => String(Math.round(v)),
    empty: "No samples yet",
  })

  const waits = stats.wait_histogram.map((b) => ({label: bucketLabel(b), value: b.chats}))
  barChart($("chart-waits"), waits, {
    label: `Waits: ${waits.filter((b) => b.value).map((b) => `${b.value} waited ${b.label}`).join(", ") || "none recorded"}`,
    formatY: (v) => String(Math.round(v)),
    empty: "No waits recorded yet",
  })

  const teachers = stats.per_teacher.slice(0, 12).map((t) => ({label: displayName(t.teacher), value: t.chats}))
  barChart($("chart-teachers"), teachers, {
    label: `Chats per teacher: ${teachers.map((t) => `${t.label} ${t.value}`).join(", ") || "none"}`,
    formatY: (v) => String(Math.round(v)),
    empty: "No chats yet",
  })

  const hours = stats.busiest_hours.map((h) => ({label: `${String(h.hour).padStart(2, "0")}h`, value: h.chats}))
  const busiest = [...stats.busiest_hours].sort((a, b) => b.chats - a.chats)[0]
  barChart($("chart-hours"), hours, {
    label: busiest && busiest.chats ? `Chats by hour (UTC); busiest ${busiest.hour}:00 with ${busiest.chats}` : "Chats by hour (UTC): none",
    formatY: (v) => String(Math.round(v)),
    empty: "No chats yet",
  })

  $("updated").textContent = `Updated ${clock(stats.until)}; refreshes every ${POLL_MS / 1000} s.`
}

function problem(text){
  const note = $("dash-problem")
  note.textContent = text
  note.hidden = !text
}

let timer = null
async function poll(){
  clearTimeout(timer)
  const since = Date.now() - Number($("window").value)
  try {
    const response = await fetch(`/api/stats?since=${since}`, {
      headers: {accept: "application/json", authorization: `Bearer ${session.token}`},
    })
    if(response.status === 401) return tokenRefused(session)
    if(response.status === 403){
      document.body.dataset.state = "forbidden"
      $("connection").dataset.state = "offline"
      $("connection").textContent = "Not for you"
      const note = document.createElement("p")
      note.className = "notice"
      note.id = "not-for-you"
      note.setAttribute("role", "alert")
      note.textContent = `The dashboard is for teachers and admins; you are signed in as a ${session.role}.`
      const back = document.createElement("a")
      back.href = session.role === "student" ? "/student" : "/"
      back.textContent = session.role === "student" ? "Back to the student page" : "Back to the start page"
      $("main").replaceChildren(note, back)
      return
    }
    const body = await response.json().catch(() => null)
    if(!response.ok || !body){
      throw new Error(typeof body?.error === "string" ? body.error : `the server answered ${response.status}`)
    }
    render(body)
    problem("")
    $("connection").dataset.state = "online"
    $("connection").textContent = "Live"
    document.body.dataset.state = "ready"
  } catch (error) {
    $("connection").dataset.state = "offline"
    $("connection").textContent = "Offline"
    problem(`Could not load the statistics: ${error.message || error}. Trying again in ${POLL_MS / 1000} s.`)
  }
  timer = setTimeout(poll, POLL_MS)
}

$("window").addEventListener("change", poll)
poll()
