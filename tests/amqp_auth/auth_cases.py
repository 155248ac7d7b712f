#!/usr/bin/env python3
"""pika against the broker's AMQP logins and ACLs (tests/amqp_auth.rs runs each case).

  python auth_cases.py CASE HOST:PORT [ARGS...]

Cases:
  plain USER PASSWORD          PLAIN login works; a publish and get round-trip.
  plain_refused USER PASSWORD [REASON]
                               the login is refused (ProbableAccessDeniedError or
                               AuthenticationError), with REASON in the broker's text.
  external CA CERT KEY SUBJECT amqps with a client certificate, EXTERNAL login: the
                               login is SUBJECT (a user_id of SUBJECT is accepted, any
                               other refused with 406, as RabbitMQ checks it).
  external_not_offered         EXTERNAL on a connection without a certificate: pika finds
                               it not offered and gives up.
  publish_denied USER PASSWORD ADMIN ADMIN_PASSWORD
                               a confirmed publish to a queue ADMIN (a super-user)
                               declared closes USER's channel with 403; the connection
                               stays usable and nothing is enqueued.
  denied_all USER PASSWORD ADMIN ADMIN_PASSWORD
                               every queue and exchange method USER tries is refused
                               with 403 ACCESS_REFUSED and changes nothing.
  allowed USER PASSWORD PREFIX ADMIN ADMIN_PASSWORD
                               USER's ACLs allow queues PREFIX*: it declares, publishes,
                               gets and deletes there, and is refused (403) elsewhere.
Prints `ok CASE` on success; exits 3 when pika is missing.
"""
import ssl
import sys
import uuid

try:
    import pika
    from pika.exceptions import (AMQPConnectionError, ChannelClosedByBroker,
                                 ProbableAccessDeniedError, ProbableAuthenticationError,
                                 AuthenticationError)
except ImportError:
    print("pika is not installed (run .ci/run)")
    sys.exit(3)


def params(addr, credentials, ssl_options=None):
    host, port = addr.rsplit(":", 1)
    return pika.ConnectionParameters(
        host=host, port=int(port), credentials=credentials, ssl_options=ssl_options,
        connection_attempts=1, socket_timeout=10, blocked_connection_timeout=10)


def connect(addr, user, password):
    return pika.BlockingConnection(params(addr, pika.PlainCredentials(user, password)))


def round_trip(conn, user_id=None):
    ch = conn.channel()
    queue = "auth-" + uuid.uuid4().hex[:8]
    ch.queue_declare(queue=queue)
    ch.confirm_delivery()
    body = b"hello " + queue.encode()
    ch.basic_publish("", queue, body, pika.BasicProperties(user_id=user_id))
    method, props, got = ch.basic_get(queue=queue, auto_ack=True)
    assert method is not None and got == body, (method, got)
    ch.queue_delete(queue=queue)
    return props


def expect_403(conn, action, what):
    ch = conn.channel()
    try:
        action(ch)
    except ChannelClosedByBroker as e:
        assert e.reply_code == 403, f"{what}: {e.reply_code} {e.reply_text}"
        assert "ACCESS_REFUSED" in e.reply_text, e.reply_text
        return
    raise AssertionError(f"{what}: served, wanted 403")


def plain(addr, user, password):
    conn = connect(addr, user, password)
    round_trip(conn)
    conn.close()


def plain_refused(addr, user, password, reason=""):
    try:
        conn = connect(addr, user, password)
    except (ProbableAccessDeniedError, ProbableAuthenticationError, AuthenticationError) as e:
        print("refused as expected:", type(e).__name__, repr(e))
        assert reason in repr(e), f"refused, but not for {reason!r}: {e!r}"
        return
    conn.close()
    raise AssertionError(f"{user} logged in with a wrong password")


def external(addr, ca, cert, key, subject):
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    conn = pika.BlockingConnection(params(
        addr, pika.credentials.ExternalCredentials(),
        pika.SSLOptions(context, server_hostname="localhost")))
    # user_id must be the login: the certificate's subject is.
    round_trip(conn, user_id=subject)
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        ch.basic_publish("", "nowhere", b"x", pika.BasicProperties(user_id="guest"))
    except ChannelClosedByBroker as e:
        assert e.reply_code == 406 and subject in e.reply_text, e.reply_text
    else:
        raise AssertionError("a user_id other than the certificate's was accepted")
    conn.close()


def external_not_offered(addr):
    try:
        conn = pika.BlockingConnection(params(addr, pika.credentials.ExternalCredentials()))
    except (AuthenticationError, AMQPConnectionError) as e:
        print("not offered:", type(e).__name__, e)
        return
    conn.close()
    raise AssertionError("EXTERNAL logged in without a certificate")


def publish_denied(addr, user, password, admin, admin_password):
    """USER may not write to a queue ADMIN (a super-user) declared: the confirmed publish
    closes the channel with 403, the connection stays usable, and the queue is empty."""
    queue = "acl-" + uuid.uuid4().hex[:8]
    boss = connect(addr, admin, admin_password)
    boss_ch = boss.channel()
    boss_ch.queue_declare(queue=queue)
    conn = connect(addr, user, password)
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        ch.basic_publish("", queue, b"must not arrive")
    except ChannelClosedByBroker as e:
        assert e.reply_code == 403, (e.reply_code, e.reply_text)
        assert queue in e.reply_text and user in e.reply_text, e.reply_text
    else:
        raise AssertionError("a denied publish was confirmed")
    # Only the channel closed: the connection opens another.
    conn.channel().close()
    method, _props, body = boss_ch.basic_get(queue=queue, auto_ack=True)
    assert method is None, f"a denied publish was enqueued: {body!r}"
    # The super-user may; the denied user may not read what it published either.
    boss_ch.confirm_delivery()
    boss_ch.basic_publish("", queue, b"from the super-user")
    expect_403(conn, lambda c: c.basic_get(queue=queue), "get")
    method, _props, body = boss_ch.basic_get(queue=queue, auto_ack=True)
    assert body == b"from the super-user", body
    boss_ch.queue_delete(queue=queue)
    conn.close()
    boss.close()


def denied_all(addr, user, password, admin, admin_password):
    """USER has no ACLs: every method that touches a queue or exchange is refused with
    403, and the queue and exchange ADMIN (a super-user) made are as they were."""
    queue, exchange = "acl-q-" + uuid.uuid4().hex[:8], "acl-x-" + uuid.uuid4().hex[:8]
    boss = connect(addr, admin, admin_password)
    boss_ch = boss.channel()
    boss_ch.queue_declare(queue=queue)
    boss_ch.exchange_declare(exchange=exchange, exchange_type="fanout")
    boss_ch.confirm_delivery()
    boss_ch.basic_publish("", queue, b"kept")
    conn = connect(addr, user, password)
    actions = {
        "queue.declare": lambda ch: ch.queue_declare(queue="acl-new-" + uuid.uuid4().hex[:8]),
        "queue.declare passive": lambda ch: ch.queue_declare(queue=queue, passive=True),
        "queue.delete": lambda ch: ch.queue_delete(queue=queue),
        "queue.purge": lambda ch: ch.queue_purge(queue=queue),
        "basic.get": lambda ch: ch.basic_get(queue=queue),
        "basic.consume": lambda ch: (ch.basic_consume(queue, lambda *a: None),
                                     conn.process_data_events(time_limit=1)),
        "queue.bind": lambda ch: ch.queue_bind(queue=queue, exchange=exchange),
        "exchange.declare": lambda ch: ch.exchange_declare(
            exchange="acl-new-" + uuid.uuid4().hex[:8], exchange_type="fanout"),
        "exchange.delete": lambda ch: ch.exchange_delete(exchange=exchange),
        "basic.publish to an exchange": lambda ch: (ch.confirm_delivery(),
                                                    ch.basic_publish(exchange, "", b"x")),
    }
    for what, action in actions.items():
        expect_403(conn, action, what)
    conn.close()
    kept = boss_ch.queue_declare(queue=queue, passive=True).method.message_count
    assert kept == 1, f"the queue has {kept} messages after the denied methods"
    boss_ch.exchange_declare(exchange=exchange, passive=True)
    boss_ch.queue_delete(queue=queue)
    boss_ch.exchange_delete(exchange=exchange)
    boss.close()


def allowed(addr, user, password, prefix, admin, admin_password):
    """USER may do everything to queues named PREFIX...: it declares one, publishes,
    gets the message back and deletes it; a publish to a queue outside the prefix (one
    ADMIN declared) is refused with 403 and not enqueued."""
    conn = connect(addr, user, password)
    ch = conn.channel()
    queue = prefix + uuid.uuid4().hex[:8]
    ch.queue_declare(queue=queue)
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"granted")
    method, _props, body = ch.basic_get(queue=queue, auto_ack=True)
    assert body == b"granted", (method, body)
    ch.queue_delete(queue=queue)
    other = "other-" + uuid.uuid4().hex[:8]
    boss = connect(addr, admin, admin_password)
    boss_ch = boss.channel()
    boss_ch.queue_declare(queue=other)
    expect_403(conn, lambda c: (c.confirm_delivery(), c.basic_publish("", other, b"x")),
               "publish outside the prefix")
    kept = boss_ch.queue_declare(queue=other, passive=True).method.message_count
    assert kept == 0, kept
    boss_ch.queue_delete(queue=other)
    conn.close()
    boss.close()


CASES = {f.__name__: f for f in [plain, plain_refused, external, external_not_offered,
                                  publish_denied, denied_all, allowed]}


def main():
    case, addr, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    CASES[case](addr, *args)
    print("ok", case)


if __name__ == "__main__":
    main()
