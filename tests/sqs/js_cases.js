// Amazon SQS programs written with the AWS SDK for JavaScript v3 (@aws-sdk/client-sqs, which
// speaks SQS's JSON 1.0 protocol), run unchanged but for `endpoint` against a broker:
//
//     node js_cases.js ENDPOINT CASE
//
// ENDPOINT is the broker's HTTP address as a URL (`http://127.0.0.1:8080`). Cases:
// queue_url, attributes_and_md5, long_poll, delete_and_stale_receipt, batch_per_entry,
// missing_queue, fifo_and_tags (see each function). Every wait has a deadline and queue names carry a
// per-run token. Prints `ok CASE` on success; exits 3 when @aws-sdk/client-sqs cannot be
// loaded (NODE_PATH names the node_modules that has it). Driven by tests/sqs_js.rs.
'use strict'

let sdk
try {
  sdk = require('@aws-sdk/client-sqs')
} catch (e) {
  console.log(`@aws-sdk/client-sqs not loadable: ${e.message}`)
  process.exit(3)
}
const {
  SQSClient, CreateQueueCommand, GetQueueUrlCommand, DeleteQueueCommand, SendMessageCommand,
  SendMessageBatchCommand, ReceiveMessageCommand, DeleteMessageCommand,
  ChangeMessageVisibilityCommand, GetQueueAttributesCommand, TagQueueCommand,
  ListQueueTagsCommand,
} = sdk
const crypto = require('crypto')

// The longest one wait of a case takes, in milliseconds.
const WAIT_MS = 10000
// Polling step of waits that have nothing to block on.
const POLL_MS = 50
// The account id the broker puts in queue URLs by default (--sqs-account-id).
const ACCOUNT = '000000000000'
const RUN = crypto.randomUUID().slice(0, 8)

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`)
}

function assertEq(got, want, what) {
  assert(JSON.stringify(got) === JSON.stringify(want),
    `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const name = (kase, what) => `${kase.slice(0, 12)}-${RUN}-${what}`
const md5Hex = data => crypto.createHash('md5').update(data).digest('hex')

function client(endpoint) {
  return new SQSClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    // One try: a retried request would hide a broker error behind a later success.
    maxAttempts: 1,
  })
}

// MD5OfMessageAttributes as AWS's SDKs compute it: sorted by name; per attribute the
// length-prefixed (u32 BE) name and DataType, a transport byte (1 string, 2 binary) and
// the length-prefixed value.
function md5OfAttributes(attrs) {
  const parts = []
  const prefixed = bytes => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(bytes.length)
    parts.push(len, bytes)
  }
  const names = Object.keys(attrs).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  for (const key of names) {
    const a = attrs[key]
    prefixed(Buffer.from(key))
    prefixed(Buffer.from(a.DataType))
    if (a.StringValue !== undefined) {
      parts.push(Buffer.from([1]))
      prefixed(Buffer.from(a.StringValue))
    } else {
      parts.push(Buffer.from([2]))
      prefixed(Buffer.from(a.BinaryValue))
    }
  }
  return md5Hex(Buffer.concat(parts))
}

// `action` must fail with the SDK's exception for the SQS error `shape`: its `name`, and
// the modeled class where the SDK has one.
async function expectError(shape, action, what) {
  try {
    await action()
  } catch (e) {
    assert(e.name === shape, `${what}: error ${e.name} (${e.message}), wanted ${shape}`)
    if (sdk[shape]) assert(e instanceof sdk[shape], `${what}: not an instance of ${shape}`)
    const status = e.$metadata && e.$metadata.httpStatusCode
    assert(e.$fault === 'client' && status >= 400 && status < 500,
      `${what}: fault ${e.$fault}, HTTP status ${status}, wanted the client's fault`)
    return e
  }
  throw new Error(`${what}: no error, wanted ${shape}`)
}

async function create(c, queue, attributes) {
  const got = await c.send(new CreateQueueCommand({ QueueName: queue, Attributes: attributes }))
  return got.QueueUrl
}

async function receive(c, url, extra) {
  const got = await c.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 0, ...extra }))
  return got.Messages || []
}

// Receives until `want` messages came, within WAIT_MS.
async function receiveWithin(c, url, want, what, extra) {
  const deadline = Date.now() + WAIT_MS
  const got = []
  while (got.length < want) {
    assert(Date.now() < deadline, `${what}: ${got.length} of ${want} messages within ${WAIT_MS} ms`)
    got.push(...await receive(c, url, { WaitTimeSeconds: 1, MaxNumberOfMessages: want - got.length, ...extra }))
  }
  return got
}

async function visibleCount(c, url) {
  const got = await c.send(new GetQueueAttributesCommand({
    QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
  }))
  return [Number(got.Attributes.ApproximateNumberOfMessages),
    Number(got.Attributes.ApproximateNumberOfMessagesNotVisible)]
}

async function waitCounts(c, url, want, what) {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const got = await visibleCount(c, url)
    if (JSON.stringify(got) === JSON.stringify(want)) return
    assert(Date.now() < deadline, `${what}: counts ${JSON.stringify(got)}, wanted ${JSON.stringify(want)}`)
    await sleep(POLL_MS)
  }
}

// CreateQueue answers the queue's URL on the broker's address; GetQueueUrl finds the same
// one; CreateQueue of an existing name with the same attributes answers it again.
async function queue_url(endpoint) {
  const c = client(endpoint)
  const q = name('url', 'q')
  const url = await create(c, q)
  assertEq(url, `${endpoint}/${ACCOUNT}/${q}`, 'CreateQueue QueueUrl')
  const got = await c.send(new GetQueueUrlCommand({ QueueName: q }))
  assertEq(got.QueueUrl, url, 'GetQueueUrl')
  assertEq(await create(c, q), url, 'CreateQueue again')
  await c.send(new DeleteQueueCommand({ QueueUrl: url }))
}

const BODY = 'line one\r\nline two <&>"\' caf\u00e9 \u{1F985} \t end'
const ATTRS = {
  attrS: { DataType: 'String', StringValue: 'v <&>\u00e9' },
  attrN: { DataType: 'Number', StringValue: '-42.5e3' },
  attrC: { DataType: 'String.custom', StringValue: 'custom label' },
  attrB: { DataType: 'Binary', BinaryValue: Uint8Array.from({ length: 256 }, (_, i) => i) },
}

// A send with message attributes comes back whole: body, attributes (binary too), system
// attributes, and the MD5 digests of both (the SDK checks the body's itself as well).
async function attributes_and_md5(endpoint) {
  const c = client(endpoint)
  const url = await create(c, name('md5', 'q'))
  const before = Date.now()
  const sent = await c.send(new SendMessageCommand({ QueueUrl: url, MessageBody: BODY, MessageAttributes: ATTRS }))
  const after = Date.now() + 1
  assertEq(sent.MD5OfMessageBody, md5Hex(Buffer.from(BODY)), 'SendMessage MD5OfMessageBody')
  assertEq(sent.MD5OfMessageAttributes, md5OfAttributes(ATTRS), 'SendMessage MD5OfMessageAttributes')
  const [m] = await receiveWithin(c, url, 1, 'the message',
    { MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] })
  assertEq(m.MessageId, sent.MessageId, 'MessageId')
  assertEq(m.Body, BODY, 'Body')
  assertEq(m.MD5OfBody, md5Hex(Buffer.from(BODY)), 'MD5OfBody')
  assertEq(m.MD5OfMessageAttributes, md5OfAttributes(ATTRS), 'MD5OfMessageAttributes')
  assertEq(Object.keys(m.MessageAttributes).sort(), Object.keys(ATTRS).sort(), 'attribute names')
  for (const [key, want] of Object.entries(ATTRS)) {
    const got = m.MessageAttributes[key]
    assertEq(got.DataType, want.DataType, `${key} DataType`)
    if (want.StringValue !== undefined) {
      assertEq(got.StringValue, want.StringValue, `${key} StringValue`)
    } else {
      assert(Buffer.from(got.BinaryValue).equals(Buffer.from(want.BinaryValue)), `${key} BinaryValue`)
    }
  }
  const sentAt = Number(m.Attributes.SentTimestamp)
  assert(before <= sentAt && sentAt <= after, `SentTimestamp ${sentAt} not in [${before}, ${after}]`)
  assertEq(m.Attributes.ApproximateReceiveCount, '1', 'ApproximateReceiveCount')
  await c.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }))
  await c.send(new DeleteQueueCommand({ QueueUrl: url }))
}

// A long poll answers as soon as a message arrives, not after its full wait.
async function long_poll(endpoint) {
  const c = client(endpoint)
  const url = await create(c, name('longpoll', 'q'))
  const start = Date.now()
  const later = sleep(1000).then(() =>
    client(endpoint).send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'woke' })))
  const got = await receive(c, url, { WaitTimeSeconds: 10 })
  const took = Date.now() - start
  await later
  assertEq(got.map(m => m.Body), ['woke'], 'long poll')
  assert(took >= 900 && took < 5000, `long poll answered after ${took} ms`)
  const empty = Date.now()
  assertEq(await receive(c, url, { WaitTimeSeconds: 2 }), [], 'empty long poll')
  const waited = Date.now() - empty
  assert(waited >= 1800 && waited < 5000, `empty long poll of 2 s took ${waited} ms`)
  await c.send(new DeleteQueueCommand({ QueueUrl: url }))
}

// DeleteMessage with the receipt handle deletes; a receipt from an earlier receive of the
// same message (and one that is not a receipt at all) is refused as ReceiptHandleIsInvalid.
async function delete_and_stale_receipt(endpoint) {
  const c = client(endpoint)
  const url = await create(c, name('stale', 'q'))
  await c.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'once' }))
  const [first] = await receiveWithin(c, url, 1, 'first receive')
  // Visible again at once: the next receive leases it anew, with another receipt.
  await c.send(new ChangeMessageVisibilityCommand({
    QueueUrl: url, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0,
  }))
  const [second] = await receiveWithin(c, url, 1, 'second receive',
    { MessageSystemAttributeNames: ['ApproximateReceiveCount'] })
  assertEq(second.MessageId, first.MessageId, 'the same message')
  assertEq(second.Attributes.ApproximateReceiveCount, '2', 'ApproximateReceiveCount')
  assert(second.ReceiptHandle !== first.ReceiptHandle, 'a new receipt handle')
  await expectError('ReceiptHandleIsInvalid', () => c.send(new DeleteMessageCommand({
    QueueUrl: url, ReceiptHandle: first.ReceiptHandle,
  })), 'DeleteMessage, stale receipt')
  await expectError('ReceiptHandleIsInvalid', () => c.send(new DeleteMessageCommand({
    QueueUrl: url, ReceiptHandle: 'garbage',
  })), 'DeleteMessage, garbage receipt')
  await waitCounts(c, url, [0, 1], 'refused deletes left the lease')
  await c.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: second.ReceiptHandle }))
  await waitCounts(c, url, [0, 0], 'after DeleteMessage')
  await c.send(new DeleteQueueCommand({ QueueUrl: url }))
}

// SendMessageBatch with failing entries answers each entry: the good ones are sent, the
// others listed in Failed with their own code, and only the good ones are received.
async function batch_per_entry(endpoint) {
  const c = client(endpoint)
  const url = await create(c, name('batch', 'q'))
  const entries = [
    { Id: 'good', MessageBody: 'fine', MessageAttributes: { k: { DataType: 'String', StringValue: 'v' } } },
    { Id: 'nul', MessageBody: 'bad \u0000 body' },
    { Id: 'late', MessageBody: 'too late', DelaySeconds: 901 },
    { Id: 'good2', MessageBody: 'also fine' },
  ]
  const got = await c.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries }))
  const ok = got.Successful || []
  const failed = got.Failed || []
  assertEq(ok.map(s => s.Id), ['good', 'good2'], 'Successful')
  assertEq(ok[0].MD5OfMessageBody, md5Hex('fine'), 'good MD5OfMessageBody')
  assertEq(ok[0].MD5OfMessageAttributes, md5OfAttributes(entries[0].MessageAttributes), 'good MD5OfMessageAttributes')
  const byId = Object.fromEntries(failed.map(f => [f.Id, f]))
  assertEq(Object.keys(byId).sort(), ['late', 'nul'], 'Failed')
  assert(failed.every(f => f.SenderFault === true), `SenderFault: ${JSON.stringify(failed)}`)
  assertEq(byId.nul.Code, 'InvalidMessageContents', 'nul Code')
  assertEq(byId.late.Code, 'InvalidParameterValue', 'late Code')
  const bodies = (await receiveWithin(c, url, 2, 'the good entries')).map(m => m.Body).sort()
  assertEq(bodies, ['also fine', 'fine'], 'received bodies')
  await c.send(new DeleteQueueCommand({ QueueUrl: url }))
}

// A queue that does not exist is the SDK's QueueDoesNotExist, whichever call meets it.
async function missing_queue(endpoint) {
  const c = client(endpoint)
  const q = name('missing', 'q')
  const url = `${endpoint}/${ACCOUNT}/${q}`
  await expectError('QueueDoesNotExist', () => c.send(new GetQueueUrlCommand({ QueueName: q })), 'GetQueueUrl')
  await expectError('QueueDoesNotExist', () => c.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x' })), 'SendMessage')
  await expectError('QueueDoesNotExist', () => receive(c, url), 'ReceiveMessage')
  await expectError('QueueDoesNotExist', () => c.send(new DeleteQueueCommand({ QueueUrl: url })), 'DeleteQueue')
}

// A FIFO queue from a second SDK: group order, a duplicate answered with the original's
// MessageId and SequenceNumber, the FIFO system attributes; tags round-trip.
async function fifo_and_tags(endpoint) {
  const c = client(endpoint)
  const q = name('fifo', 'q') + '.fifo'
  const created = await c.send(new CreateQueueCommand({
    QueueName: q, Attributes: { FifoQueue: 'true' }, tags: { team: 'orders' },
  }))
  const url = created.QueueUrl
  const tags = await c.send(new ListQueueTagsCommand({ QueueUrl: url }))
  assertEq(tags.Tags, { team: 'orders' }, 'tags from CreateQueue')
  await c.send(new TagQueueCommand({ QueueUrl: url, Tags: { env: 'dev' } }))
  const more = await c.send(new ListQueueTagsCommand({ QueueUrl: url }))
  assertEq(more.Tags, { env: 'dev', team: 'orders' }, 'tags after TagQueue')
  const send = (body, dedup) => c.send(new SendMessageCommand({
    QueueUrl: url, MessageBody: body, MessageGroupId: 'g', MessageDeduplicationId: dedup,
  }))
  const first = await send('one', 'd1')
  const second = await send('two', 'd2')
  assert(BigInt(second.SequenceNumber) > BigInt(first.SequenceNumber), 'sequence numbers grow')
  const dup = await send('one again', 'd1')
  assertEq([dup.MessageId, dup.SequenceNumber], [first.MessageId, first.SequenceNumber], 'duplicate')
  const got = []
  const deadline = Date.now() + WAIT_MS
  while (got.length < 2) {
    assert(Date.now() < deadline, `received ${JSON.stringify(got)}`)
    const out = await c.send(new ReceiveMessageCommand({
      QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageSystemAttributeNames: ['All'],
    }))
    for (const m of out.Messages || []) {
      got.push([m.Body, m.Attributes.MessageGroupId, m.Attributes.MessageDeduplicationId])
      await c.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }))
    }
  }
  assertEq(got, [['one', 'g', 'd1'], ['two', 'g', 'd2']], 'group order, no duplicate')
  await c.send(new DeleteQueueCommand({ QueueUrl: url }))
}

const CASES = { queue_url, attributes_and_md5, long_poll, delete_and_stale_receipt, batch_per_entry, missing_queue, fifo_and_tags }

async function main() {
  const [endpoint, kase] = process.argv.slice(2)
  const run = CASES[kase]
  if (!endpoint || !run) {
    console.log(`usage: node js_cases.js ENDPOINT CASE (CASE: ${Object.keys(CASES).join(', ')})`)
    process.exit(2)
  }
  await run(endpoint)
  console.log(`ok ${kase}`)
}

main().catch(e => {
  console.log(e && e.stack ? e.stack : String(e))
  process.exit(1)
})
