// The demo uses fastify-realtime's client (served as /realtime-client.js): it reconnects by
// itself, resumes its room from the last offset, and says when history could not be replayed.
import { RealtimeClient } from '/realtime-client.js'

const stateEl = document.getElementById('state')
const reconnectsEl = document.getElementById('reconnects')
const joinedEl = document.getElementById('joined')
const messagesEl = document.getElementById('messages')
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

document.getElementById('join').addEventListener('submit', async (event) => {
  event.preventDefault()
  unsubscribe?.()
  room = roomInput.value
  messagesEl.replaceChildren()
  try {
    unsubscribe = await client.subscribe(`room:${room}`, (message) => show(message.data.text, message.data.from), {
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
