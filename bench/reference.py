"""The reference: the bare pipeline Parley is measured against.

    client --HTTP--> aiohttp server --publish (persistent, confirmed)--> reference.in
           reference.in --> worker --publish (persistent, confirmed), then ack--> reference.out
           reference.out --> sink (in the bench driver, like the sandbox outbox reader for Parley)

The server and the worker are separate processes (``python -m bench.reference server|worker``),
like the gateway and the agent, on the same event loop as the services (uvloop). The queues are
durable quorum queues, as Parley's are, so the comparison is of the code and not of the broker's
queue type. No database, no validation beyond JSON: this is the floor of what an HTTP ->
RabbitMQ -> worker -> RabbitMQ pipeline costs on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid

import aio_pika
from aiohttp import web

from parley_shared.cli import new_event_loop

IN, OUT = "reference.in", "reference.out"
QUEUE_ARGS = {"x-queue-type": "quorum"}


async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
    for name in (IN, OUT):
        await channel.declare_queue(name, durable=True, arguments=QUEUE_ARGS)


def _message(body: dict[str, object]) -> aio_pika.Message:
    return aio_pika.Message(
        json.dumps(body).encode(),
        message_id=str(body["message_id"]),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def serve(amqp_url: str, port: int) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await declare(channel)
    exchange = channel.default_exchange

    async def inbound(request: web.Request) -> web.Response:
        body = await request.json()
        message = {"message_id": str(uuid.uuid4()), "phone": body["from"], "text": body["text"]}
        await exchange.publish(_message(message), routing_key=IN, mandatory=True)
        return web.json_response({"message_id": message["message_id"], "status": "published"}, status=202)

    app = web.Application()
    app.router.add_post("/inbound", inbound)
    app.router.add_get("/health", lambda _r: web.json_response({"ok": True}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def work(amqp_url: str, prefetch: int) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=prefetch)
    await declare(channel)
    exchange = channel.default_exchange
    queue = await channel.get_queue(IN)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        reply = {
            "message_id": str(uuid.uuid4()),
            "phone": body["phone"],
            "in_reply_to": [body["message_id"]],
            "text": f"reply to {len(body['text'])} characters",
        }
        await exchange.publish(_message(reply), routing_key=OUT, mandatory=True)
        await message.ack()

    await queue.consume(on_message)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference")
    parser.add_argument("role", choices=["server", "worker"])
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prefetch", type=int, default=64)
    args = parser.parse_args(argv)
    # The services' own event loop (uvloop), so that the comparison is of the work, not of the loop.
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            if args.role == "server":
                runner.run(serve(args.amqp, args.port))
            else:
                runner.run(work(args.amqp, args.prefetch))
        except KeyboardInterrupt:
            sys.exit(0)


if __name__ == "__main__":
    main()
