// Kafka transactions through KafkaJS, one case per run, against a broker whose Kafka
// address and a fresh topic the caller gives:
//
//     node kafkajs_cases.js HOST:PORT CASE TOPIC PARTITIONS
//
// Cases: commit, abort, timeout, fence, offsets (see each function). The topic's partitions must
// be led by at least two nodes (shards), which the script checks first. Every read goes
// up to a sentinel (`end`, written by a plain producer to every partition after the
// case's transactions), so no case waits for silence. Prints `ok CASE` on success; exits
// 3 when kafkajs cannot be loaded (NODE_PATH names the node_modules that has it).
// Driven by tests/kafka_txn_clients.rs.
'use strict'

let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  console.log(`kafkajs not loadable: ${e.message}`)
  process.exit(3)
}
const { Kafka, logLevel } = kafkajs
const crypto = require('crypto')

// The longest one wait of a case takes, in milliseconds.
const TIMEOUT_MS = 30000
const SENTINEL = 'end'
// The transaction timeout of the timeout case; the broker checks about every second.
const SHORT_TXN_TIMEOUT_MS = 2000
// Broker codes that mean "fenced": PRODUCER_FENCED, INVALID_PRODUCER_EPOCH.
const FENCING_CODES = [90, 47]
const FENCING_TYPES = ['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH']

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`)
}

function assertList(got, want, what) {
  assert(JSON.stringify(got) === JSON.stringify(want),
    `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const unique = prefix => `${prefix}-${crypto.randomUUID()}`

// Whether `e` (or what it wraps) is a fencing error from the broker.
function fencing(e) {
  for (let cur = e, depth = 0; cur && depth < 8; depth++) {
    if (FENCING_CODES.includes(cur.code) || FENCING_TYPES.includes(cur.type)) return true
    cur = cur.originalError || cur.cause
  }
  return false
}

class Case {
  constructor(bootstrap, topic, partitions) {
    this.topic = topic
    this.partitions = partitions
    this.kafka = new Kafka({
      clientId: 'txn-cases',
      brokers: [bootstrap],
      logLevel: logLevel.NOTHING,
      retry: { retries: 5, initialRetryTime: 100 },
    })
    this.clients = []
  }

  async producer(opts = {}) {
    const p = this.kafka.producer(opts)
    await p.connect()
    this.clients.push(p)
    return p
  }

  txnProducer(transactionalId, extra = {}) {
    return this.producer({
      transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      ...extra,
    })
  }

  messages(tag, count) {
    const out = []
    for (let i = 0; i < count; i++) {
      for (let part = 0; part < this.partitions; part++) {
        const v = `${tag}-${part}-${i}`
        out.push({ key: v, value: v, partition: part })
      }
    }
    return out
  }

  expected(tag, part, count) {
    return Array.from({ length: count }, (_, i) => `${tag}-${part}-${i}`)
  }

  async checkLeaders() {
    const admin = this.kafka.admin()
    await admin.connect()
    this.clients.push(admin)
    const md = await admin.fetchTopicMetadata({ topics: [this.topic] })
    const parts = md.topics[0].partitions
    assert(parts.length === this.partitions, `${parts.length} partitions`)
    const leaders = new Set(parts.map(p => p.leader))
    assert(leaders.size >= 2, `partitions on one node: ${[...leaders]}`)
  }

  // The end offset of each partition: ListOffsets LATEST as KafkaJS's admin asks it
  // (isolation level 0, read_uncommitted).
  async endOffsets() {
    const admin = this.kafka.admin()
    await admin.connect()
    try {
      const offsets = await admin.fetchTopicOffsets(this.topic)
      const out = {}
      for (const o of offsets) out[o.partition] = Number(o.high)
      return out
    } finally {
      await admin.disconnect()
    }
  }

  async writeSentinels() {
    const p = await this.producer()
    const messages = []
    for (let part = 0; part < this.partitions; part++) {
      messages.push({ value: SENTINEL, partition: part })
    }
    await p.send({ topic: this.topic, acks: -1, messages })
  }

  // Each partition's values before its sentinel, read by a consumer group of its own.
  async read(readUncommitted) {
    const consumer = this.kafka.consumer({
      groupId: unique('reader'),
      readUncommitted,
      sessionTimeout: 10000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 200,
    })
    await consumer.connect()
    const got = {}
    for (let part = 0; part < this.partitions; part++) got[part] = []
    const ended = new Set()
    let finish
    const done = new Promise(resolve => { finish = resolve })
    try {
      await consumer.subscribe({ topics: [this.topic], fromBeginning: true })
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (ended.has(partition)) return
          const value = message.value.toString()
          if (value === SENTINEL) {
            ended.add(partition)
            if (ended.size === this.partitions) finish()
          } else {
            got[partition].push(value)
          }
        },
      })
      const timer = sleep(TIMEOUT_MS).then(() => 'timeout')
      const outcome = await Promise.race([done.then(() => 'done'), timer])
      const level = readUncommitted ? 'read_uncommitted' : 'read_committed'
      assert(outcome === 'done',
        `${level}: sentinels of ${[...ended]} only; read ${JSON.stringify(got)}`)
    } finally {
      await consumer.disconnect()
    }
    return got
  }

  async close() {
    for (const c of this.clients) {
      try { await c.disconnect() } catch (_) { /* a fenced producer may refuse */ }
    }
  }
}

// A transaction over every partition commits: both isolation levels read it whole.
async function caseCommit(c) {
  const p = await c.txnProducer(unique('commit'))
  const txn = await p.transaction()
  await txn.send({ topic: c.topic, messages: c.messages('c', 5) })
  await txn.commit()
  await c.writeSentinels()
  for (const uncommitted of [false, true]) {
    const got = await c.read(uncommitted)
    for (let part = 0; part < c.partitions; part++) {
      assertList(got[part], c.expected('c', part, 5), `uncommitted=${uncommitted} p${part}`)
    }
  }
}

// An aborted transaction is seen by read_uncommitted only; the next one commits.
async function caseAbort(c) {
  const p = await c.txnProducer(unique('abort'))
  let txn = await p.transaction()
  await txn.send({ topic: c.topic, messages: c.messages('aborted', 4) })
  await txn.abort()
  txn = await p.transaction()
  await txn.send({ topic: c.topic, messages: c.messages('kept', 3) })
  await txn.commit()
  await c.writeSentinels()
  const committed = await c.read(false)
  const uncommitted = await c.read(true)
  for (let part = 0; part < c.partitions; part++) {
    assertList(committed[part], c.expected('kept', part, 3), `committed p${part}`)
    const both = c.expected('aborted', part, 4).concat(c.expected('kept', part, 3))
    assertList(uncommitted[part], both, `uncommitted p${part}`)
  }
}

// A transaction left open past its timeout is aborted by the broker (the last stable
// offset moves past its marker) and its producer is fenced.
async function caseTimeout(c) {
  const p = await c.txnProducer(unique('timeout'), {
    transactionTimeout: SHORT_TXN_TIMEOUT_MS,
  })
  const txn = await p.transaction()
  // KafkaJS sends before it answers: the records are in the logs.
  await txn.send({ topic: c.topic, messages: c.messages('open', 4) })
  // The broker's abort writes a marker after the 4 records of each partition.
  const deadline = Date.now() + TIMEOUT_MS
  for (;;) {
    const ends = await c.endOffsets()
    let all = true
    for (let part = 0; part < c.partitions; part++) {
      if (!(ends[part] >= 5)) all = false
    }
    if (all) break
    assert(Date.now() < deadline, `end offsets ${JSON.stringify(ends)}`)
    await sleep(200)
  }
  let refused = null
  try {
    await txn.commit()
  } catch (e) {
    refused = e
  }
  assert(refused !== null, 'commit after the broker aborted on timeout succeeded')
  assert(fencing(refused), `not a fencing error: ${refused}`)
  const later = await c.producer()
  await later.send({ topic: c.topic, acks: -1, messages: c.messages('later', 2) })
  await c.writeSentinels()
  const committed = await c.read(false)
  const uncommitted = await c.read(true)
  for (let part = 0; part < c.partitions; part++) {
    assertList(committed[part], c.expected('later', part, 2), `committed p${part}`)
    const both = c.expected('open', part, 4).concat(c.expected('later', part, 2))
    assertList(uncommitted[part], both, `uncommitted p${part}`)
  }
}

// A second producer with the same transactional id fences the first: the first's commit
// fails with a fencing error; only the second's transaction is read.
async function caseFence(c) {
  const id = unique('fence')
  const first = await c.txnProducer(id)
  const zombie = await first.transaction()
  await zombie.send({ topic: c.topic, messages: c.messages('zombie', 3) })
  const second = await c.txnProducer(id)
  const txn = await second.transaction()
  let refused = null
  try {
    await zombie.commit()
  } catch (e) {
    refused = e
  }
  assert(refused !== null, "the fenced producer's commit succeeded")
  assert(fencing(refused), `not a fencing error: ${refused}`)
  await txn.send({ topic: c.topic, messages: c.messages('live', 3) })
  await txn.commit()
  await c.writeSentinels()
  const committed = await c.read(false)
  for (let part = 0; part < c.partitions; part++) {
    assertList(committed[part], c.expected('live', part, 3), `committed p${part}`)
  }
}

// Offsets sent to a transaction reach the group only when it commits; an aborted
// transaction's offsets are dropped.
async function caseOffsets(c) {
  const plain = await c.producer()
  await plain.send({ topic: c.topic, acks: -1, messages: c.messages('in', 2) })
  const groupId = unique('offsets')
  const offsets = {
    consumerGroupId: groupId,
    topics: [{
      topic: c.topic,
      partitions: Array.from({ length: c.partitions }, (_, partition) => ({ partition, offset: '2' })),
    }],
  }
  const admin = c.kafka.admin()
  await admin.connect()
  c.clients.push(admin)
  const committed = async () => {
    const got = await admin.fetchOffsets({ groupId, topics: [c.topic] })
    return got[0].partitions
      .slice()
      .sort((a, b) => a.partition - b.partition)
      .map(p => Number(p.offset))
  }
  const p = await c.txnProducer(unique('offsets'))
  let txn = await p.transaction()
  await txn.send({ topic: c.topic, messages: c.messages('dropped', 1) })
  await txn.sendOffsets(offsets)
  await txn.abort()
  const afterAbort = await committed()
  assert(afterAbort.every(o => o < 0), `after the abort: ${afterAbort}`)
  txn = await p.transaction()
  await txn.send({ topic: c.topic, messages: c.messages('out', 1) })
  await txn.sendOffsets(offsets)
  await txn.commit()
  assertList(await committed(), Array(c.partitions).fill(2), 'after the commit')
  await c.writeSentinels()
  const got = await c.read(false)
  for (let part = 0; part < c.partitions; part++) {
    const want = c.expected('in', part, 2).concat(c.expected('out', part, 1))
    assertList(got[part], want, `committed p${part}`)
  }
}

const CASES = {
  offsets: caseOffsets,
  commit: caseCommit,
  abort: caseAbort,
  timeout: caseTimeout,
  fence: caseFence,
}

async function main() {
  const [bootstrap, name, topic, partitions] = process.argv.slice(2)
  if (!CASES[name] || !topic || !partitions) {
    console.log(`usage: kafkajs_cases.js HOST:PORT CASE TOPIC PARTITIONS; cases: ${Object.keys(CASES).join(' ')}`)
    process.exit(2)
  }
  const c = new Case(bootstrap, topic, Number(partitions))
  try {
    await c.checkLeaders()
    await CASES[name](c)
  } finally {
    await c.close()
  }
  console.log(`ok ${name}`)
}

main().then(() => process.exit(0), e => {
  console.log(`case failed: ${e && e.stack ? e.stack : e}`)
  process.exit(1)
})
