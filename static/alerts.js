// Getting someone's attention when their turn comes while they look elsewhere
// (the student: "you're next", "a teacher took you"; the teacher: someone
// joined an empty queue): a browser Notification, a short beep (WebAudio, no
// sound file) and the tab's title flashing until the tab is focused.
//
// Browsers allow a permission request and sound only after a user gesture:
// the page calls `prepareAlerts()` from a click ("Get in line", "Turn on
// alerts"), which asks for Notification permission once (only while the
// answer is "default") and starts the audio context. Without permission the
// beep and the title still work; without either, the title does.
//
// Pages set their title through `setTitle()`, so a flash puts back the
// latest one, not the one it started from.

let audio = null
let baseTitle = document.title
let flashTimer = null

/** Whether the browser can show notifications at all. */
export const canNotify = () => typeof window.Notification === "function"

/** "granted", "denied", "default", or "unsupported". */
export function notificationPermission(){
  return canNotify() ? window.Notification.permission : "unsupported"
}

/** From a click: asks for Notification permission (once) and readies the sound. Answers the permission. */
export async function prepareAlerts(){
  try {
    const Context = window.AudioContext || window.webkitAudioContext
    if(Context) audio ??= new Context()
    await audio?.resume?.()
  } catch {}
  if(notificationPermission() !== "default") return notificationPermission()
  try { return await window.Notification.requestPermission() } catch { return notificationPermission() }
}

/** The page's title; shown at once unless a flash is going on (it comes back after). */
export function setTitle(title){
  baseTitle = title
  if(flashTimer === null) document.title = title
}

const looking = () => document.visibilityState === "visible" && document.hasFocus()

/**
 * Gets attention for `title` (short: it is also the flashing title) with
 * `body` (optional detail). `tag` replaces an earlier notification with the
 * same tag rather than piling up.
 */
export function attention({title, body = "", tag = "tutor-queue"}){
  if(notificationPermission() === "granted"){
    try {
      const note = new window.Notification(title, {body, tag})
      note.onclick = () => { window.focus(); note.close() }
    } catch {}
  }
  beep()
  if(!looking()) flash(title)
}

function beep(){
  if(!audio || audio.state !== "running") return
  try {
    const now = audio.currentTime
    const tone = audio.createOscillator()
    const gain = audio.createGain()
    tone.type = "sine"
    tone.frequency.setValueAtTime(880, now)
    tone.frequency.setValueAtTime(660, now + 0.12)
    gain.gain.setValueAtTime(0.0001, now)
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02)
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.3)
    tone.connect(gain).connect(audio.destination)
    tone.start(now)
    tone.stop(now + 0.32)
  } catch {}
}

function flash(text){
  stopFlash()
  let on = false
  flashTimer = setInterval(() => {
    on = !on
    document.title = on ? `🔔 ${text}` : baseTitle
  }, 1000)
  document.title = `🔔 ${text}`
}

function stopFlash(){
  if(flashTimer === null) return
  clearInterval(flashTimer)
  flashTimer = null
  document.title = baseTitle
}

addEventListener("focus", stopFlash)
document.addEventListener("visibilitychange", () => { if(looking()) stopFlash() })
