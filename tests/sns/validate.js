// Checks SNS messages with AWS's own validator, the npm package `sns-validator` (0.3.5:
// SignatureVersion 1 and 2), as an HTTP endpoint written for SNS does: it fetches the
// certificate from each message's SigningCertURL (https only, from a host the pattern
// allows) and verifies the signature over the documented string to sign.
//
// Usage: NODE_PATH=target/ci-node/node_modules NODE_EXTRA_CA_CERTS=CA.pem \
//            node tests/sns/validate.js HOST_PATTERN < messages.json
// stdin: a JSON array of messages. stdout: one line per message, in order: `valid`, or
// `invalid: REASON`. Exit 3 when sns-validator is not installed.
"use strict";

let MessageValidator;
try {
    MessageValidator = require("sns-validator");
} catch (e) {
    console.error(`sns-validator is not installed (${e.message}): run .ci/run`);
    process.exit(3);
}

const validator = new MessageValidator(new RegExp(process.argv[2]));
const check = (message) =>
    new Promise((resolve) =>
        validator.validate(message, (err) => resolve(err ? `invalid: ${err.message}` : "valid")));

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
    for (const message of JSON.parse(input)) {
        console.log(await check(message));
    }
});
