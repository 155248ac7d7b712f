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

const https = require("https");
const crypto = require("crypto");

const hosts = new RegExp(process.argv[2]);
const validator = new MessageValidator(hosts);
const validate = (message) =>
    new Promise((resolve) =>
        validator.validate(message, (err) => resolve(err ? `invalid: ${err.message}` : "valid")));

// sns-validator 0.3.5 checks an UnsubscribeConfirmation over a Notification's keys,
// without Token. AWS signs it over the keys of a SubscriptionConfirmation (its "Verifying
// the signatures of Amazon SNS messages" page; its PHP and Ruby validators agree), so it
// is checked here in that documented form, with the same certificate rules.
const CONFIRMATION_KEYS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"];
const certificate = (url) =>
    new Promise((resolve, reject) =>
        https.get(url, (res) => {
            let pem = "";
            res.on("data", (chunk) => (pem += chunk));
            res.on("end", () => resolve(pem));
        }).on("error", reject));
const validateUnsubscribe = async (m) => {
    const url = new URL(m.SigningCertURL);
    if (url.protocol !== "https:" || !hosts.test(url.host)) {
        return "invalid: The certificate is located on an invalid domain.";
    }
    const verifier = crypto.createVerify(m.SignatureVersion === "1" ? "RSA-SHA1" : "RSA-SHA256");
    for (const key of CONFIRMATION_KEYS) {
        verifier.update(`${key}\n${m[key]}\n`, "utf8");
    }
    try {
        const valid = verifier.verify(await certificate(m.SigningCertURL), m.Signature, "base64");
        return valid ? "valid" : "invalid: The message signature is invalid.";
    } catch (e) {
        return `invalid: ${e.message}`;
    }
};
const check = (m) => (m.Type === "UnsubscribeConfirmation" ? validateUnsubscribe(m) : validate(m));

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
    for (const message of JSON.parse(input)) {
        console.log(await check(message));
    }
});
