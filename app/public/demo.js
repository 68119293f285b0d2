// The demo speaks protocol realtime.v1 with the browser's plain WebSocket, to show the wire
// format as it is. It reconnects after a second and resumes its room from the last offset.
'use strict'

const stateEl = document.getElementById('state')
const joinedEl = document.getElementById('joined')
const messagesEl = document.getElementById('messages')
const roomInput = document.getElementById('room')
const textInput = document.getElementById('text')

let socket
let nextId = 1
let room = null
let lastOffset
let epoch

function setState (state) {
  stateEl.textContent = state
  stateEl.dataset.state = state
}

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

function send (type, data) {
  if (socket?.readyState !== WebSocket.OPEN) return false
  socket.send(JSON.stringify({ type, id: nextId++, data }))
  return true
}

function subscribe () {
  if (room === null) return
  const data = { topic: `room:${room}` }
  if (lastOffset !== undefined) Object.assign(data, { since: lastOffset, epoch })
  send('$subscribe', data)
}

function connect () {
  setState('connecting')
  const url = new URL('/ws', document.baseURI)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  socket = new WebSocket(url, 'realtime.v1')
  socket.addEventListener('open', () => {
    setState('open')
    subscribe()
  })
  socket.addEventListener('close', () => {
    setState('closed')
    setTimeout(connect, 1000)
  })
  socket.addEventListener('message', (event) => {
    const frame = JSON.parse(event.data)
    if (frame.type === 'message') {
      if (lastOffset !== undefined && compareOffsets(frame.offset, lastOffset) <= 0) return
      lastOffset = frame.offset
      show(frame.data.text, frame.data.from)
    } else if (frame.type === '$reply' && frame.data?.topic !== undefined && frame.data.epoch !== undefined) {
      // The server sends the replay before this reply, so the offset only moves forward, unless
      // the history is a new one (another epoch), whose offsets restart.
      if (lastOffset === undefined || frame.data.epoch !== epoch || compareOffsets(frame.data.offset, lastOffset) > 0) {
        lastOffset = frame.data.offset
      }
      epoch = frame.data.epoch
      joinedEl.textContent = `In room ${room}${frame.data.recovered ? ' (recovered missed messages)' : ''}.`
    } else if (frame.type === '$error') {
      show(`${frame.error.code}: ${frame.error.message}`, null, 'error')
    }
  })
}

function compareOffsets (a, b) {
  const [aMs, aSeq] = a.split('-').map(Number)
  const [bMs, bSeq] = b.split('-').map(Number)
  return aMs !== bMs ? aMs - bMs : aSeq - bSeq
}

document.getElementById('join').addEventListener('submit', (event) => {
  event.preventDefault()
  if (room !== null) send('$unsubscribe', { topic: `room:${room}` })
  room = roomInput.value
  lastOffset = undefined
  epoch = undefined
  messagesEl.replaceChildren()
  subscribe()
})

document.getElementById('say').addEventListener('submit', (event) => {
  event.preventDefault()
  if (room === null) {
    show('Join a room first.', null, 'error')
    return
  }
  if (send('say', { room, text: textInput.value })) textInput.value = ''
})

connect()
