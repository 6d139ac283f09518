#!/usr/bin/env node
// End-to-end check of the tutor-queue server with the official Phoenix
// JavaScript client (npm "phoenix" 1.8, V2 serializer) over the "ws" package.
//
// Usage: node phoenix_chat.mjs ws://127.0.0.1:PORT/socket
//
// Drives one complete chat as in PROTOCOL.md 7.5 with two sockets, a teacher
// (teacher 1) and a student (student 1), and checks every frame either socket
// receives. Prints each step; exits 0 on success and 1 with a message on the
// first failed expectation, on any socket or channel error, or after 10 s.
//
// It expects a fresh server with nobody else connected: the user:status
// snapshots are compared exactly (teachers.total 1, students.total 1 then 0).
// Besides the flow of 7.5 it also checks, from the raw frames: V2 arrays only,
// string refs echoed as strings, reply join_ref == request join_ref, the join
// reply first on each topic, leave = ok reply then [JR,JR,topic,"phx_close",{}],
// no phx_error, frame order for claim (5.4) and terminate (7.5 step 12), a
// claim with nobody waiting (ok {}), and a repeated chat:terminate (ok {},
// no second chat:terminated, no extra user:status).

import {isDeepStrictEqual, inspect} from "node:util"
import {Socket} from "phoenix"
import WebSocket from "ws"

const OVERALL_TIMEOUT_MS = 10000
const STEP_TIMEOUT_MS = 3000
const TEACHER_ID = 1
const STUDENT_ID = 1
const MESSAGES = 3

// ---------------------------------------------------------------- reporting
let currentStep = "setup"
let done = false

function fail(message){
  if(done) return
  done = true
  console.error(`FAIL [${currentStep}]: ${message}`)
  process.exit(1)
}

function step(label, text){
  currentStep = label
  console.log(`[${label}] ${text}`)
}

function ok(text){ console.log(`    ok: ${text}`) }

function check(condition, message){ if(!condition) fail(message) }

const show = (v) => inspect(v, {depth: 6, breakLength: Infinity})
const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v)
const isCount = (v) => Number.isInteger(v) && v >= 0

function expectEqual(actual, expected, what){
  check(isDeepStrictEqual(actual, expected), `${what}: expected ${show(expected)}, got ${show(actual)}`)
}

// Resolves with the value of `promise`, or fails the run after `ms`.
function within(promise, what, ms = STEP_TIMEOUT_MS){
  let timer
  const timeout = new Promise(() => {
    timer = setTimeout(() => fail(`timed out after ${ms} ms waiting for ${what}`), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

process.on("uncaughtException", (err) => fail(`uncaught exception: ${err && err.stack || err}`))
process.on("unhandledRejection", (err) => fail(`unhandled rejection: ${err && err.stack || err}`))

// ---------------------------------------------------------------- arguments
// The teacher's endpoint, and the student's (another node of the same
// deployment; the teacher's if not given).
const endpoint = process.argv[2]
const studentEndpoint = process.argv[3] || endpoint
if(!endpoint || process.argv.length > 4){
  console.error("usage: node phoenix_chat.mjs ws://127.0.0.1:PORT/socket [ws://127.0.0.1:PORT2/socket]")
  process.exit(2)
}
for(const given of [endpoint, studentEndpoint]){
  let url
  try { url = new URL(given) } catch { url = null }
  if(!url || url.protocol !== "ws:"){
    console.error(`endpoint must be a ws:// URL, got ${given}`)
    process.exit(2)
  }
  const host = url.hostname
  if(!(host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host))){
    console.error(`refusing non-loopback endpoint host ${host}`)
    process.exit(2)
  }
}

// ---------------------------------------------------------------- frame monitor
// Sees every raw frame of one socket in both directions and checks the V2
// framing and the channel-layer rules of PROTOCOL.md sections 2 and 3.
const ALLOWED_EVENTS = {
  teacher: {presence: ["user:status", `new:chat:${TEACHER_ID}`], chat: ["chat:ready", "teacher:receive", "chat:terminated"]},
  student: {presence: ["new:chat"], chat: ["chat:ready", "student:receive", "chat:terminated"]},
}

class Monitor {
  constructor(name, role, presenceTopic){
    this.name = name
    this.role = role
    this.presenceTopic = presenceTopic
    this.sent = new Map()      // ref -> {joinRef, topic, event}
    this.replies = new Map()   // ref -> reply payload
    this.topics = new Map()    // topic -> {state, joinRef, leaveRef, leaveReplied}
    this.closeWaiters = new Map() // topic -> resolve
    this.replyWaiters = new Map() // ref -> resolve
    this.framesIn = 0
    this.framesOut = 0
    this.url = null
  }

  bad(message, text){ fail(`${this.name} socket: ${message}${text === undefined ? "" : `\n    frame: ${text}`}`) }

  outgoing(data){
    this.framesOut++
    const text = typeof data === "string" ? data : null
    if(text === null) return this.bad("the client sent a non-text frame (unexpected for this test)")
    let msg
    try { msg = JSON.parse(text) } catch { return this.bad("the client sent invalid JSON", text) }
    if(!Array.isArray(msg) || msg.length !== 5) return this.bad("the client did not send a V2 array", text)
    const [joinRef, ref, topic, event] = msg
    this.sent.set(ref, {joinRef, topic, event})
    if(event === "phx_join"){
      this.topics.set(topic, {state: "joining", joinRef: ref, leaveRef: null, leaveReplied: false})
    } else if(event === "phx_leave"){
      const t = this.topics.get(topic)
      if(t){ t.state = "leaving"; t.leaveRef = ref }
    }
  }

  incoming(data, isBinary){
    this.framesIn++
    if(isBinary) return this.bad("received a binary frame; the server must send text frames only")
    const text = data.toString("utf8")
    let msg
    try { msg = JSON.parse(text) } catch { return this.bad("received a frame that is not valid JSON", text) }
    if(!Array.isArray(msg) || msg.length !== 5){
      return this.bad("received a frame that is not a V2 five-element array [join_ref, ref, topic, event, payload]", text)
    }
    const [joinRef, ref, topic, event, payload] = msg
    if(joinRef !== null && typeof joinRef !== "string") return this.bad("join_ref must be a string or null", text)
    if(ref !== null && typeof ref !== "string") return this.bad("ref must be a string or null (echo refs with their JSON type)", text)
    if(typeof topic !== "string" || typeof event !== "string") return this.bad("topic and event must be strings", text)
    if(!isPlainObject(payload)) return this.bad("payload must be a JSON object", text)

    if(topic === "phoenix"){
      const req = this.sent.get(ref)
      if(event !== "phx_reply" || !req || req.event !== "heartbeat") return this.bad("unexpected frame on topic phoenix", text)
      if(joinRef !== null) return this.bad("a heartbeat reply must have join_ref null", text)
      if(!isDeepStrictEqual(payload, {status: "ok", response: {}})) return this.bad("a heartbeat reply must be ok with {}", text)
      this.replies.set(ref, payload)
      return
    }

    const t = this.topics.get(topic)
    if(!t) return this.bad(`received a frame on topic ${topic}, which this socket never joined`, text)

    if(event === "phx_reply"){
      const req = this.sent.get(ref)
      if(!req) return this.bad(`reply to ref ${show(ref)}, which this socket never sent`, text)
      if(req.topic !== topic) return this.bad(`reply on ${topic} to a push sent on ${req.topic}`, text)
      if(joinRef !== req.joinRef) return this.bad(`reply join_ref ${show(joinRef)} must echo the request's join_ref ${show(req.joinRef)}`, text)
      if(!(payload.status === "ok" || payload.status === "error") || !isPlainObject(payload.response)){
        return this.bad("reply payload must be {status: ok|error, response: {...}}", text)
      }
      if(t.state === "joining"){
        if(ref !== t.joinRef) return this.bad(`the first frame on ${topic} after phx_join must be the join reply`, text)
        t.state = payload.status === "ok" ? "joined" : "refused"
      }
      if(ref === t.leaveRef) t.leaveReplied = true
      this.replies.set(ref, payload)
      const resolve = this.replyWaiters.get(ref)
      if(resolve){ this.replyWaiters.delete(ref); resolve(payload) }
      return
    }

    if(t.state === "joining") return this.bad(`${event} arrived on ${topic} before the join reply`, text)

    if(event === "phx_close"){
      if(t.state !== "leaving" || !t.leaveReplied) return this.bad(`unexpected phx_close on ${topic} (this socket did not leave it, or the leave reply had not come first)`, text)
      if(joinRef !== t.joinRef || ref !== t.joinRef) return this.bad(`phx_close must be [JR, JR, ...] with the channel's join ref ${show(t.joinRef)}`, text)
      if(!isDeepStrictEqual(payload, {})) return this.bad("phx_close payload must be {}", text)
      t.state = "closed"
      const resolve = this.closeWaiters.get(topic)
      if(resolve){ this.closeWaiters.delete(topic); resolve() }
      return
    }
    if(event === "phx_error") return this.bad(`server sent phx_error on ${topic}`, text)

    // application push or broadcast
    if(ref !== null) return this.bad("server pushes and broadcasts must have ref null", text)
    if(joinRef !== null && joinRef !== t.joinRef) return this.bad(`push with join_ref ${show(joinRef)} that is neither null nor the channel's ${show(t.joinRef)} (the client would drop it)`, text)
    if(!(t.state === "joined" || t.state === "leaving")) return this.bad(`${event} on ${topic} while the channel is ${t.state}`, text)
    const kind = topic === this.presenceTopic ? "presence" : topic.startsWith("chats:") ? "chat" : null
    const allowed = kind ? ALLOWED_EVENTS[this.role][kind] : []
    if(!allowed.includes(event)){
      if(event === "student:receive" || event === "teacher:receive"){
        return this.bad(`the ${this.role} received ${event}; relayed messages must reach only the other side (PROTOCOL 5.4)`, text)
      }
      return this.bad(`unexpected event ${event} on ${topic} for the ${this.role}`, text)
    }
  }

  // the server's own reply to a push (phoenix.js resolves channel.leave()
  // locally, without waiting for the server, so the leave reply is checked here)
  waitReply(ref, what){
    if(this.replies.has(ref)) return Promise.resolve(this.replies.get(ref))
    return within(new Promise(resolve => this.replyWaiters.set(ref, resolve)), `${this.name}: server reply to ${what}`)
  }

  waitClosed(topic){
    const t = this.topics.get(topic)
    if(t && t.state === "closed") return Promise.resolve()
    return within(new Promise(resolve => this.closeWaiters.set(topic, resolve)), `${this.name}: phx_close on ${topic} after the leave`)
  }
}

function tapTransport(monitor){
  return class TapWebSocket extends WebSocket {
    constructor(url, protocols){
      super(url, protocols)
      monitor.url = url
      // registered before phoenix sets onmessage, so the raw check runs first
      this.on("message", (data, isBinary) => monitor.incoming(data, isBinary))
    }
    send(data, ...rest){
      monitor.outgoing(data)
      return super.send(data, ...rest)
    }
  }
}

// ---------------------------------------------------------------- event inbox
// Application events as delivered by the phoenix channels, in arrival order.
// Each expectation consumes one event; at the end nothing may be left over,
// which is how duplicates (chat:ready, chat:terminated, user:status, relays)
// are caught.
class Inbox {
  constructor(name){
    this.name = name
    this.items = []
    this.waiters = []
    this.seq = 0
  }

  record(topic, event, payload){
    const item = {topic, event, payload, seq: ++this.seq, taken: false}
    this.items.push(item)
    const i = this.waiters.findIndex(w => w.topic === topic && w.event === event)
    if(i >= 0){
      const [w] = this.waiters.splice(i, 1)
      item.taken = true
      w.resolve(item)
    }
  }

  next(topic, event){
    const item = this.items.find(it => !it.taken && it.topic === topic && it.event === event)
    if(item){
      item.taken = true
      return Promise.resolve(item)
    }
    return within(new Promise(resolve => this.waiters.push({topic, event, resolve})), `${this.name}: ${event} on ${topic}`)
  }

  leftovers(){ return this.items.filter(it => !it.taken) }
}

// ---------------------------------------------------------------- one client
class Client {
  constructor(name, role, presenceTopic, at){
    this.name = name
    this.role = role
    this.closing = false
    this.monitor = new Monitor(name, role, presenceTopic)
    this.inbox = new Inbox(name)
    this.socket = new Socket(at, {transport: tapTransport(this.monitor)})
    this.socket.onError((err) => {
      fail(`${name} socket error: ${err && (err.message || err.type) || show(err)}`)
    })
    this.socket.onClose((ev) => {
      if(!this.closing) fail(`${name} socket closed unexpectedly (code ${ev && ev.code}, reason ${show(ev && ev.reason)})`)
    })
  }

  connect(){
    const opened = new Promise(resolve => this.socket.onOpen(resolve))
    this.socket.connect()
    return within(opened, `${this.name} socket to open`)
  }

  ping(){
    return within(new Promise((resolve) => {
      if(!this.socket.ping(resolve)) fail(`${this.name} socket is not connected`)
    }), `${this.name} heartbeat reply`)
  }

  channel(topic, params, events){
    const channel = this.socket.channel(topic, params)
    channel.onError((reason) => fail(`${this.name}: channel ${topic} errored: ${show(reason)}`))
    for(const event of events){
      channel.on(event, (payload) => this.inbox.record(topic, event, payload))
    }
    return channel
  }

  join(channel){
    return within(new Promise((resolve) => {
      channel.join()
        .receive("ok", resolve)
        .receive("error", (resp) => fail(`${this.name}: join ${channel.topic} refused: ${show(resp)}`))
        .receive("timeout", () => fail(`${this.name}: join ${channel.topic} timed out`))
    }), `${this.name}: join reply on ${channel.topic}`)
  }

  // push and expect an ok reply; resolves with {response, seq} where seq is the
  // number of application events this socket had received when the reply came
  request(channel, event, payload){
    return within(new Promise((resolve) => {
      channel.push(event, payload)
        .receive("ok", (response) => resolve({response, seq: this.inbox.seq}))
        .receive("error", (resp) => fail(`${this.name}: ${event} on ${channel.topic} got an error reply: ${show(resp)}`))
        .receive("timeout", () => fail(`${this.name}: ${event} on ${channel.topic} got no reply`))
    }), `${this.name}: reply to ${event} on ${channel.topic}`)
  }

  // push with no reply expected on success (the relay events)
  send(channel, event, payload){
    channel.push(event, payload)
      .receive("error", (resp) => fail(`${this.name}: ${event} on ${channel.topic} got an error reply: ${show(resp)}`))
  }

  // channel.leave() in phoenix.js 1.8 fires its "ok" hooks at once, locally (the
  // channel is no longer "joined" when it checks canPush), and the channel is
  // closed before the server answers. So the leave counts as done only once the
  // server's own phx_reply (ok, {}) and then its phx_close have arrived.
  async leave(channel){
    const push = channel.leave()
    await within(new Promise((resolve) => {
      push.receive("ok", resolve)
        .receive("timeout", () => fail(`${this.name}: leave ${channel.topic} got no reply`))
    }), `${this.name}: leave ${channel.topic} to resolve`)
    const reply = await this.monitor.waitReply(push.ref, `phx_leave on ${channel.topic}`)
    expectEqual(reply, {status: "ok", response: {}}, `${this.name}: server reply to phx_leave on ${channel.topic}`)
    await this.monitor.waitClosed(channel.topic)
  }

  disconnect(){
    this.closing = true
    return within(new Promise(resolve => this.socket.disconnect(resolve)), `${this.name} socket to disconnect`)
  }
}

// ---------------------------------------------------------------- payload checks
function checkStatus(payload, expected, what){
  check(isPlainObject(payload) && isPlainObject(payload.teachers) && isPlainObject(payload.students),
    `${what}: user:status must be {teachers: {...}, students: {...}}, got ${show(payload)}`)
  const {total, waiting, chatting, finished} = payload.students
  check(isCount(payload.teachers.total) && [total, waiting, chatting, finished].every(isCount),
    `${what}: user:status counts must be non-negative integers, got ${show(payload)}`)
  check(total === waiting + chatting + finished,
    `${what}: students.total (${total}) != waiting + chatting + finished (${waiting} + ${chatting} + ${finished})`)
  expectEqual(payload, expected, `${what}: user:status`)
}

const status = (teachers, total, waiting, chatting, finished) =>
  ({teachers: {total: teachers}, students: {total, waiting, chatting, finished}})

const CHAT_KEYS = ["id", "status", "teacher_id", "student_id", "teacher_entered", "student_entered", "messages"]

function checkChat(chat, what){
  check(isPlainObject(chat), `${what}: chat object expected, got ${show(chat)}`)
  expectEqual(Object.keys(chat).sort(), [...CHAT_KEYS].sort(), `${what}: chat object keys`)
  check(typeof chat.id === "string" && chat.id.length > 0, `${what}: chat id must be a non-empty string, got ${show(chat.id)}`)
  expectEqual(chat.status, "active", `${what}: status`)
  expectEqual(chat.teacher_id, TEACHER_ID, `${what}: teacher_id`)
  expectEqual(chat.student_id, STUDENT_ID, `${what}: student_id`)
  expectEqual(chat.teacher_entered, false, `${what}: teacher_entered`)
  expectEqual(chat.student_entered, false, `${what}: student_entered`)
  expectEqual(chat.messages, [], `${what}: messages`)
}

// ---------------------------------------------------------------- the chat
async function main(){
  const overall = setTimeout(() => fail(`overall timeout: the run did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`), OVERALL_TIMEOUT_MS)

  const teacherPresence = "presence:teachers"
  const studentPresence = `presence:student:${STUDENT_ID}`
  const teacher = new Client("teacher", "teacher", teacherPresence, endpoint)
  const student = new Client("student", "student", studentPresence, studentEndpoint)

  step("0", `connect the teacher's socket to ${endpoint}, the student's to ${studentEndpoint}`)
  await Promise.all([teacher.connect(), student.connect()])
  for(const c of [teacher, student]){
    const url = new URL(c.monitor.url)
    check(url.pathname.endsWith("/websocket") && url.searchParams.get("vsn") === "2.0.0",
      `${c.name} socket URL ${c.monitor.url} is not <endpoint>/websocket?vsn=2.0.0`)
  }
  ok(`connected: ${teacher.monitor.url} and ${student.monitor.url}`)
  await Promise.all([teacher.ping(), student.ping()])
  ok("heartbeat round trip on both sockets")

  step("1", `teacher ${TEACHER_ID} joins ${teacherPresence}; student ${STUDENT_ID} joins ${studentPresence}`)
  const tPresence = teacher.channel(teacherPresence, {userId: TEACHER_ID, role: "teacher"}, ALLOWED_EVENTS.teacher.presence)
  expectEqual(await teacher.join(tPresence), {}, "teacher presence join response")
  ok(`teacher joined ${teacherPresence}`)
  {
    const {response} = await teacher.request(tPresence, "claim:student", {teacherId: TEACHER_ID})
    expectEqual(response, {}, "claim:student with nobody waiting: reply response")
    ok("claim:student with nobody waiting: ok {}")
  }
  const sPresence = student.channel(studentPresence, {userId: STUDENT_ID, role: "student"}, ALLOWED_EVENTS.student.presence)
  expectEqual(await student.join(sPresence), {}, "student presence join response")
  ok(`student joined ${studentPresence}`)

  step("2", "student pushes student:ready; teacher sees one waiting student")
  {
    const {response} = await student.request(sPresence, "student:ready", {userId: STUDENT_ID})
    expectEqual(response, {}, "student:ready reply response")
    ok("student:ready: ok {}")
    const st = await teacher.inbox.next(teacherPresence, "user:status")
    checkStatus(st.payload, status(1, 1, 1, 0, 0), "after student:ready (the first user:status the teacher gets)")
    ok(`user:status ${JSON.stringify(st.payload)}`)
  }

  step("3", "teacher pushes claim:student; chat created")
  let chatId
  {
    const claim = teacher.request(tPresence, "claim:student", {teacherId: TEACHER_ID})
    const pushed = teacher.inbox.next(teacherPresence, `new:chat:${TEACHER_ID}`)
    const st = teacher.inbox.next(teacherPresence, "user:status")
    const studentNew = student.inbox.next(studentPresence, "new:chat")
    const reply = await claim
    const newChat = await pushed
    checkChat(reply.response, "claim:student reply response")
    checkChat(newChat.payload, `new:chat:${TEACHER_ID} push`)
    expectEqual(newChat.payload, reply.response, `new:chat:${TEACHER_ID} push vs claim reply`)
    chatId = reply.response.id
    ok(`claim:student reply ok with chat ${chatId}`)
    const stItem = await st
    checkStatus(stItem.payload, status(1, 1, 0, 1, 0), "after claim:student")
    check(newChat.seq < stItem.seq && stItem.seq <= reply.seq,
      `teacher frame order for a claim must be new:chat:${TEACHER_ID}, user:status, reply (PROTOCOL 5.4)`)
    ok(`teacher got new:chat:${TEACHER_ID}, then user:status ${JSON.stringify(stItem.payload)}, then the reply`)
    const sn = await studentNew
    checkChat(sn.payload, "student new:chat")
    expectEqual(sn.payload, reply.response, "student new:chat vs claim reply")
    ok(`student got new:chat for ${chatId}`)
  }

  step("4", `both join chats:${chatId} and announce themselves; chat:ready`)
  const chatTopic = `chats:${chatId}`
  const tChat = teacher.channel(chatTopic, {userId: TEACHER_ID, role: "teacher"}, ALLOWED_EVENTS.teacher.chat)
  const sChat = student.channel(chatTopic, {userId: STUDENT_ID, role: "student"}, ALLOWED_EVENTS.student.chat)
  {
    const [tj, sj] = await Promise.all([teacher.join(tChat), student.join(sChat)])
    expectEqual(tj, {}, "teacher chat join response")
    expectEqual(sj, {}, "student chat join response")
    ok("both joined the chat channel")
    const tReady = teacher.inbox.next(chatTopic, "chat:ready")
    const sReady = student.inbox.next(chatTopic, "chat:ready")
    const [tr, sr] = await Promise.all([
      teacher.request(tChat, "teacher:joined", {}),
      student.request(sChat, "student:joined", {}),
    ])
    expectEqual(tr.response, {}, "teacher:joined reply response")
    expectEqual(sr.response, {}, "student:joined reply response")
    ok("teacher:joined and student:joined: ok {}")
    const [a, b] = await Promise.all([tReady, sReady])
    expectEqual(a.payload, {}, "teacher chat:ready payload")
    expectEqual(b.payload, {}, "student chat:ready payload")
    ok("chat:ready reached both")
  }

  step("5", `${MESSAGES} messages each way`)
  for(let n = 1; n <= MESSAGES; n++){
    const fromTeacher = {message: `Message from teacher: ${n}`}
    teacher.send(tChat, "teacher:send", fromTeacher)
    const got = await student.inbox.next(chatTopic, "student:receive")
    expectEqual(got.payload, fromTeacher, `student:receive #${n}`)
    const fromStudent = {message: `Message #${n} from student: ${STUDENT_ID}`}
    student.send(sChat, "student:send", fromStudent)
    const back = await teacher.inbox.next(chatTopic, "teacher:receive")
    expectEqual(back.payload, fromStudent, `teacher:receive #${n}`)
    ok(`"${fromTeacher.message}" -> "${fromStudent.message}"`)
  }
  for(const c of [teacher, student]){
    const rest = c.inbox.leftovers()
    check(rest.length === 0, `${c.name} got duplicate or unexpected events: ${show(rest.map(e => [e.topic, e.event, e.payload]))}`)
  }
  ok("no duplicate chat:ready, relay or status events so far")

  step("6", "teacher pushes chat:terminate")
  {
    const tTerm = teacher.inbox.next(chatTopic, "chat:terminated")
    const sTerm = student.inbox.next(chatTopic, "chat:terminated")
    const st = teacher.inbox.next(teacherPresence, "user:status")
    const reply = await teacher.request(tChat, "chat:terminate", {})
    expectEqual(reply.response, {}, "chat:terminate reply response")
    ok("chat:terminate: ok {}")
    const [a, b, s] = await Promise.all([tTerm, sTerm, st])
    expectEqual(a.payload, {}, "teacher chat:terminated payload")
    expectEqual(b.payload, {}, "student chat:terminated payload")
    checkStatus(s.payload, status(1, 1, 0, 0, 1), "after chat:terminate")
    check(a.seq < s.seq && s.seq <= reply.seq,
      "teacher frame order for chat:terminate must be chat:terminated, user:status, reply (PROTOCOL 7.5 step 12)")
    ok(`chat:terminated reached both; user:status ${JSON.stringify(s.payload)}`)
    const dup = teacher.inbox.leftovers()
    check(dup.length === 0, `chat:terminate produced duplicate events: ${show(dup.map(e => [e.topic, e.event, e.payload]))}`)
    // a repeated terminate is acknowledged and ignored (PROTOCOL 7.2)
    const again = await teacher.request(tChat, "chat:terminate", {})
    expectEqual(again.response, {}, "second chat:terminate reply response")
    const extra = teacher.inbox.leftovers()
    check(extra.length === 0, `second chat:terminate produced events: ${show(extra.map(e => [e.topic, e.event, e.payload]))}`)
    ok("second chat:terminate: ok {} and nothing else")
  }

  step("7", "student leaves; teacher sees an empty roster; teacher leaves; disconnect")
  {
    await student.leave(sChat)
    ok(`student left ${chatTopic} (ok, then phx_close)`)
    await student.leave(sPresence)
    ok(`student left ${studentPresence} (ok, then phx_close)`)
    const s = await teacher.inbox.next(teacherPresence, "user:status")
    checkStatus(s.payload, status(1, 0, 0, 0, 0), "after the student left")
    ok(`user:status ${JSON.stringify(s.payload)}`)
    await teacher.leave(tChat)
    ok(`teacher left ${chatTopic}`)
    await teacher.leave(tPresence)
    ok(`teacher left ${teacherPresence}`)
  }
  for(const c of [teacher, student]){
    const rest = c.inbox.leftovers()
    check(rest.length === 0, `${c.name} got unexpected extra events (duplicates?): ${show(rest.map(e => [e.topic, e.event, e.payload]))}`)
  }
  ok("no duplicate or unexpected events on either socket (chat:ready and chat:terminated exactly once each)")
  await Promise.all([teacher.disconnect(), student.disconnect()])
  ok(`both sockets disconnected (frames in/out: teacher ${teacher.monitor.framesIn}/${teacher.monitor.framesOut}, student ${student.monitor.framesIn}/${student.monitor.framesOut})`)

  clearTimeout(overall)
  done = true
  console.log("PASS: one full chat over Phoenix V2 (phoenix.js client)")
  process.exit(0)
}

main().catch((err) => fail(`unexpected exception: ${err && err.stack || err}`))
