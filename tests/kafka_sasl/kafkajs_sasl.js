// Kafka SASL through KafkaJS, driven by tests/kafka_sasl.rs:
//
//     node kafkajs_sasl.js BOOTSTRAP MECHANISM USER PASSWORD TOPIC [spread]
//
// MECHANISM is KafkaJS's name (plain, scram-sha-256, scram-sha-512). Produces ten
// messages to TOPIC (with `spread`, one every 400 ms on one connection, for a broker
// whose short SASL sessions KafkaJS must renew) and reads them back, then checks that
// a wrong password is refused
// (KafkaJSSASLAuthenticationError). Prints `ok kafkajs MECHANISM`; exits 3 when kafkajs
// cannot be loaded (NODE_PATH names the node_modules that has it).
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

// The longest one wait takes, in milliseconds.
const TIMEOUT_MS = 20000

function client(bootstrap, mechanism, username, password) {
  return new Kafka({
    clientId: 'sasl-test',
    brokers: [bootstrap],
    sasl: { mechanism, username, password },
    connectionTimeout: 5000,
    authenticationTimeout: 5000,
    retry: { retries: 2 },
    logLevel: logLevel.NOTHING,
  })
}

async function main() {
  const [bootstrap, mechanism, user, password, topic, spread] = process.argv.slice(2)
  if (!topic) {
    console.log('usage: kafkajs_sasl.js BOOTSTRAP MECHANISM USER PASSWORD TOPIC')
    process.exit(2)
  }
  const kafka = client(bootstrap, mechanism, user, password)
  const values = Array.from({ length: 10 }, (_, i) => `${mechanism} ${i} ${crypto.randomUUID()}`)
  const producer = kafka.producer()
  await producer.connect()
  if (spread === 'spread') {
    for (const value of values) {
      await producer.send({ topic, acks: -1, messages: [{ value }] })
      await new Promise((resolve) => setTimeout(resolve, 400))
    }
  } else {
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) })
  }
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `g-${crypto.randomUUID()}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${got.length} of ${values.length}`)), TIMEOUT_MS)
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString())
        if (got.length >= values.length) {
          clearTimeout(timer)
          resolve()
        }
      },
    })
  })
  await consumer.disconnect()
  if (JSON.stringify(got) !== JSON.stringify(values)) {
    throw new Error(`read back ${JSON.stringify(got)}, want ${JSON.stringify(values)}`)
  }

  const wrong = client(bootstrap, mechanism, user, `${password}-wrong`).producer()
  try {
    await wrong.connect()
    throw new Error('a wrong password was accepted')
  } catch (e) {
    if (e.name !== 'KafkaJSSASLAuthenticationError' && !(e.cause && e.cause.name === 'KafkaJSSASLAuthenticationError')) {
      throw new Error(`wrong password: ${e.name}: ${e.message}`)
    }
    console.log(`wrong password refused: ${e.name}: ${e.message}`)
  }
  console.log(`ok kafkajs ${mechanism}`)
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(`FAIL: ${e.stack || e}`)
    process.exit(1)
  },
)
