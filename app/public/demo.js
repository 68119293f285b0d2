// The demo uses fastify-realtime's client (served as /realtime-client.js): it reconnects by
// itself, resumes its room from the last offset, and says when history could not be replayed.
import { RealtimeClient } from '/realtime-client.js'

const stateEl = document.getElementById('state')
const reconnectsEl = document.getElementById('reconnects')
const joinedEl = document.getElementById('joined')
const messagesEl = document.getElementById('messages')
const membersEl = document.getElementById('members')
const roomInput = document.getElementById('room')
const textInput = document.getElementById('text')

const url = new URL('/ws', document.baseURI)
url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
const client = new RealtimeClient(url.href, { backoff: { minMs: 200, maxMs: 5000 } })

let reconnects = 0
let unsubscribe = null
let room = null

client.onState((state) => {
  stateEl.textContent = state
  stateEl.dataset.state = state
  if (state === 'reconnecting') reconnectsEl.textContent = String(++reconnects)
})

function show (text, from, className) {
  const item = document.createElement('li')
  if (from) {
    const who = document.createElement('span')
    who.className = 'from'
    who.textContent = from
    item.append(who)
  }
  const body = document.createElement('span')
  body.textContent = text
  if (className) body.className = className
  item.append(body)
  messagesEl.append(item)
  messagesEl.scrollTop = messagesEl.scrollHeight
}

// Each callback carries the whole membership, so the list is redrawn rather than patched.
function showMembers (members) {
  const items = [...members.values()].map((member) => {
    const [info] = member.connections.values()
    const name = info?.name ?? member.user
    const item = document.createElement('li')
    item.textContent = name
    if (member.connections.size > 1) item.textContent += ` · ${member.connections.size} connections`
    // The connection id changes on every reconnect; the client's is current by the time presence is read.
    if (member.connections.has(client.connectionId)) {
      item.className = 'self'
      item.textContent += ' (you)'
    }
    return { name, item }
  })
  items.sort((a, b) => a.name.localeCompare(b.name))
  membersEl.replaceChildren(...items.map(({ item }) => item))
}

document.getElementById('join').addEventListener('submit', async (event) => {
  event.preventDefault()
  unsubscribe?.()
  room = roomInput.value
  const topic = `room:${room}`
  messagesEl.replaceChildren()
  membersEl.replaceChildren()
  try {
    unsubscribe = await client.subscribe(topic, (message) => show(message.data.text, message.data.from), {
      // A room switched away from before its subscription settled is still subscribed: its
      // updates must not overwrite the list of the room now shown.
      presence: (update) => { if (update.topic === `room:${room}`) showMembers(update.members) },
      onRecoveryFailed: () => show('Some messages could not be recovered after reconnecting.', null, 'error')
    })
    joinedEl.textContent = `In room ${room}.`
  } catch (err) {
    show(`${err.code}: ${err.message}`, null, 'error')
  }
})

document.getElementById('say').addEventListener('submit', async (event) => {
  event.preventDefault()
  if (room === null) {
    show('Join a room first.', null, 'error')
    return
  }
  const text = textInput.value
  textInput.value = ''
  try {
    await client.request('say', { room, text })
  } catch (err) {
    show(`${err.code}: ${err.message}`, null, 'error')
  }
})
