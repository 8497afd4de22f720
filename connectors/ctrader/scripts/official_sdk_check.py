#!/usr/bin/env python3
"""Checks the cTrader simulator against Spotware's official Python SDK (PyPI ctrader-open-api):
the unmodified SDK client connects over TLS, authenticates the application and an account,
lists the symbols, places a market order and waits for its execution event.

    python3 -m venv /tmp/ctrader-venv && /tmp/ctrader-venv/bin/pip install ctrader-open-api==0.9.2
    cargo run -p mirror-connector-ctrader --example ctrader_sim -- 0 60 &     # prints READY port=...
    /tmp/ctrader-venv/bin/python connectors/ctrader/scripts/official_sdk_check.py PORT

Exit status 0 when the order's ORDER_FILLED event arrived, 1 otherwise. Nothing here is
needed by the Rust test suite.
"""
import sys

from twisted.internet import reactor

from ctrader_open_api import Client, Protobuf, TcpProtocol
from ctrader_open_api.messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq, ProtoOAApplicationAuthReq, ProtoOAExecutionEvent, ProtoOANewOrderReq,
    ProtoOASymbolsListReq,
)
from ctrader_open_api.messages.OpenApiModelMessages_pb2 import BUY, MARKET, ORDER_FILLED

PORT = int(sys.argv[1])
CLIENT_ID, CLIENT_SECRET = "sdk-check-app", "sdk-check-secret"
TOKEN, ACCOUNT = "sdk-check-token", 1001
CLIENT_ORDER_ID = "sdk-check-1"
result = {"ok": False}


def step(name):
    print(f"[sdk] {name}", flush=True)


def fail(failure):
    step(f"FAILED: {failure}")
    reactor.stop()


def on_message(client, message):
    if message.payloadType == ProtoOAExecutionEvent().payloadType:
        event = Protobuf.extract(message)
        step(f"execution event type={event.executionType} order={event.order.orderId} "
             f"clientOrderId={event.order.clientOrderId} clientMsgId={message.clientMsgId!r}")
        if event.executionType == ORDER_FILLED and event.order.clientOrderId == CLIENT_ORDER_ID:
            step(f"filled {event.deal.filledVolume} at {event.deal.executionPrice}, position {event.position.positionId}")
            result["ok"] = True
            reactor.stop()


def on_connected(client):
    step("connected (TLS)")
    request = ProtoOAApplicationAuthReq(clientId=CLIENT_ID, clientSecret=CLIENT_SECRET)
    client.send(request).addCallbacks(lambda response: app_authed(client, response), fail)


def app_authed(client, response):
    step(f"application auth answered with payload type {response.payloadType}")
    request = ProtoOAAccountAuthReq(ctidTraderAccountId=ACCOUNT, accessToken=TOKEN)
    client.send(request).addCallbacks(lambda response: account_authed(client, response), fail)


def account_authed(client, response):
    step(f"account auth answered with payload type {response.payloadType}")
    request = ProtoOASymbolsListReq(ctidTraderAccountId=ACCOUNT)
    client.send(request).addCallbacks(lambda response: symbols(client, response), fail)


def symbols(client, response):
    listed = Protobuf.extract(response)
    step("symbols: " + ", ".join(f"{s.symbolId}={s.symbolName}" for s in listed.symbol))
    order = ProtoOANewOrderReq(ctidTraderAccountId=ACCOUNT, symbolId=listed.symbol[0].symbolId, orderType=MARKET,
                               tradeSide=BUY, volume=100_000, clientOrderId=CLIENT_ORDER_ID, label=CLIENT_ORDER_ID)
    client.send(order).addCallbacks(lambda response: step(f"order answered with payload type {response.payloadType}"), fail)


client = Client("127.0.0.1", PORT, TcpProtocol)
client.setConnectedCallback(on_connected)
client.setDisconnectedCallback(lambda c, reason: step(f"disconnected: {reason.getErrorMessage()}"))
client.setMessageReceivedCallback(on_message)
client.startService()
reactor.callLater(30, lambda: (step("timed out"), reactor.stop()))
reactor.run()
sys.exit(0 if result["ok"] else 1)
