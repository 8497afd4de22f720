#!/usr/bin/env python3
"""Writes tests/data/*.hex: frames (4-byte big-endian length + ProtoMessage) serialized with
the official cTrader Open API Python SDK's generated `_pb2` modules, so the Rust tests check
the hand-written prost structs against Spotware's own descriptors, byte for byte.

    python3 -m venv /tmp/ctrader-venv && /tmp/ctrader-venv/bin/pip install ctrader-open-api==0.9.2
    /tmp/ctrader-venv/bin/python connectors/ctrader/scripts/make_fixtures.py connectors/ctrader/tests/data

The Rust test suite only reads the committed .hex files; it never runs Python.
"""
import os
import struct
import sys

from ctrader_open_api.messages.OpenApiCommonMessages_pb2 import ProtoHeartbeatEvent, ProtoMessage
from ctrader_open_api.messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq, ProtoOAApplicationAuthReq, ProtoOAErrorRes, ProtoOAExecutionEvent,
    ProtoOAGetAccountListByAccessTokenRes, ProtoOANewOrderReq, ProtoOAOrderErrorEvent, ProtoOAReconcileRes,
    ProtoOASpotEvent, ProtoOASymbolByIdRes,
)
from ctrader_open_api.messages.OpenApiModelMessages_pb2 import (
    ProtoOAClosePositionDetail, ProtoOACtidTraderAccount, ProtoOADeal, ProtoOAInterval, ProtoOAOrder,
    ProtoOAPosition, ProtoOASymbol, ProtoOATradeData,
    MARKET, LIMIT, BUY, SELL, GOOD_TILL_DATE, ORDER_FILLED, ORDER_STATUS_FILLED, ORDER_STATUS_ACCEPTED,
    POSITION_STATUS_OPEN, FILLED,
)


def frame(message, client_msg_id=None):
    # Exactly what the SDK's TcpProtocol.send does.
    wrapper = ProtoMessage(payload=message.SerializeToString(), payloadType=message.payloadType)
    if client_msg_id is not None:
        wrapper.clientMsgId = client_msg_id
    body = wrapper.SerializeToString()
    return struct.pack("!I", len(body)) + body


def trade(volume, side, label=None):
    data = ProtoOATradeData(symbolId=1, volume=volume, tradeSide=side, openTimestamp=1_700_000_000_000)
    if label:
        data.label = label
    return data


FIXTURES = {
    "application_auth_req": frame(ProtoOAApplicationAuthReq(clientId="id", clientSecret="sec"), "cm1"),
    "heartbeat_event": frame(ProtoHeartbeatEvent()),
    "account_auth_req": frame(ProtoOAAccountAuthReq(ctidTraderAccountId=1001, accessToken="token"), "c1"),
    "new_order_market": frame(ProtoOANewOrderReq(
        ctidTraderAccountId=1001, symbolId=1, orderType=MARKET, tradeSide=BUY, volume=100_000,
        label="m1f.3e9.0", clientOrderId="m1f.3e9.0"), "c2"),
    "new_order_limit": frame(ProtoOANewOrderReq(
        ctidTraderAccountId=1001, symbolId=1, orderType=LIMIT, tradeSide=SELL, volume=250_000,
        limitPrice=1.0951, timeInForce=GOOD_TILL_DATE, expirationTimestamp=1_700_000_600_000,
        stopLoss=1.1, takeProfit=1.09, label="m20.3e9.1", positionId=77, clientOrderId="m20.3e9.1"), "c3"),
    "execution_filled": frame(ProtoOAExecutionEvent(
        ctidTraderAccountId=1001, executionType=ORDER_FILLED,
        position=ProtoOAPosition(positionId=5, tradeData=trade(100_000, BUY, "m1f.3e9.0"),
                                 positionStatus=POSITION_STATUS_OPEN, swap=0, price=1.08508, stopLoss=1.08,
                                 moneyDigits=2),
        order=ProtoOAOrder(orderId=77, tradeData=trade(100_000, BUY), orderType=MARKET,
                           orderStatus=ORDER_STATUS_FILLED, executionPrice=1.08508, executedVolume=100_000,
                           clientOrderId="m1f.3e9.0", positionId=5),
        deal=ProtoOADeal(dealId=9, orderId=77, positionId=5, volume=100_000, filledVolume=100_000, symbolId=1,
                         createTimestamp=1_700_000_000_000, executionTimestamp=1_700_000_000_001,
                         executionPrice=1.08508, tradeSide=BUY, dealStatus=FILLED, moneyDigits=2,
                         closePositionDetail=ProtoOAClosePositionDetail(
                             entryPrice=1.08, grossProfit=-1234, swap=0, commission=-50, balance=9_998_716,
                             closedVolume=50_000, moneyDigits=2)),
        isServerEvent=False), "c2"),
    "spot_event": frame(ProtoOASpotEvent(ctidTraderAccountId=1001, symbolId=1, bid=108_500, ask=108_508,
                                         timestamp=1_700_000_000_123)),
    "error_res": frame(ProtoOAErrorRes(ctidTraderAccountId=1001, errorCode="REQUEST_FREQUENCY_EXCEEDED",
                                       description="too many requests"), "c9"),
    "order_error_event": frame(ProtoOAOrderErrorEvent(ctidTraderAccountId=1001, errorCode="TRADING_BAD_VOLUME",
                                                      description="bad volume"), "c4"),
    "reconcile_res": frame(ProtoOAReconcileRes(
        ctidTraderAccountId=1001,
        position=[ProtoOAPosition(positionId=5, tradeData=trade(300_000, SELL), positionStatus=POSITION_STATUS_OPEN,
                                  swap=-12, price=1.2641, takeProfit=1.25, moneyDigits=2)],
        order=[ProtoOAOrder(orderId=78, tradeData=trade(100_000, BUY), orderType=LIMIT,
                            orderStatus=ORDER_STATUS_ACCEPTED, limitPrice=1.08, clientOrderId="m21.3e9.0")]), "c5"),
    "symbol_by_id_res": frame(ProtoOASymbolByIdRes(
        ctidTraderAccountId=1001,
        symbol=[ProtoOASymbol(symbolId=1, digits=5, pipPosition=4, enableShortSelling=True, maxVolume=10_000_000_000,
                              minVolume=100_000, stepVolume=100_000, lotSize=10_000_000, swapLong=-0.5,
                              schedule=[ProtoOAInterval(startSecond=0, endSecond=604_800)],
                              scheduleTimeZone="UTC", slDistance=10, tpDistance=10)]), "c6"),
    "account_list_res": frame(ProtoOAGetAccountListByAccessTokenRes(
        accessToken="token", permissionScope=1,
        ctidTraderAccount=[ProtoOACtidTraderAccount(ctidTraderAccountId=1001, isLive=False, traderLogin=5001001),
                           ProtoOACtidTraderAccount(ctidTraderAccountId=2**40, isLive=True)]), "c7"),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in FIXTURES.items():
        with open(os.path.join(out, name + ".hex"), "w") as f:
            f.write(data.hex() + "\n")
    print(f"{len(FIXTURES)} fixtures written to {out}")


main()
