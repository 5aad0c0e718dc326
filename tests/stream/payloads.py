"""User-data frames shaped exactly like binance-facts.md §2 (the docs' own examples)."""

from __future__ import annotations

ORDER_TRADE_UPDATE_FILL = (
    b'{"e":"ORDER_TRADE_UPDATE","E":1789478401234,"T":1789478401230,'
    b'"o":{"s":"BTCUSDT","c":"sidecar-7f3a91","S":"SELL","o":"LIMIT","f":"GTC","q":"0.010",'
    b'"p":"76950.00","ap":"76950.00","sp":"0","x":"TRADE","X":"PARTIALLY_FILLED",'
    b'"i":812345678901,"l":"0.004","z":"0.004","L":"76950.00","N":"USDT","n":"0.12312000",'
    b'"T":1789478401230,"t":6123456789,"b":"0","a":"461.70000","m":true,"R":false,'
    b'"wt":"CONTRACT_PRICE","ot":"LIMIT","ps":"BOTH","cp":false,"pP":false,"si":0,"ss":0,'
    b'"rp":"1.84000000","V":"EXPIRE_MAKER","pm":"NONE","gtd":0,"er":"0"}}'
)

ORDER_TRADE_UPDATE_NEW_TRAILING = (
    b'{"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,'
    b'"o":{"s":"BTCUSDT","c":"TEST","S":"SELL","o":"TRAILING_STOP_MARKET","f":"GTC",'
    b'"q":"0.001","p":"0","ap":"0","sp":"7103.04","x":"NEW","X":"NEW","i":8886774,'
    b'"l":"0","z":"0","L":"0","N":"USDT","n":"0","T":1568879465650,"t":0,"b":"0","a":"9.91",'
    b'"m":false,"R":false,"wt":"CONTRACT_PRICE","ot":"TRAILING_STOP_MARKET","ps":"LONG",'
    b'"cp":false,"AP":"7476.89","cr":"5.0","pP":false,"si":0,"ss":0,"rp":"0",'
    b'"V":"EXPIRE_TAKER","pm":"OPPONENT","gtd":0,"er":"0"}}'
)

ORDER_TRADE_UPDATE_LIQUIDATION = (
    b'{"e":"ORDER_TRADE_UPDATE","E":1789478402000,"T":1789478401999,'
    b'"o":{"s":"ETHUSDT","c":"autoclose-1789478401999","S":"SELL","o":"LIQUIDATION","f":"IOC",'
    b'"q":"1.000","p":"2300.00","ap":"2301.50","sp":"0","x":"CALCULATED","X":"FILLED",'
    b'"i":99887766,"l":"1.000","z":"1.000","L":"2301.50","T":1789478401999,"t":55443322,'
    b'"b":"0","a":"0","m":false,"R":true,"wt":"CONTRACT_PRICE","ot":"LIQUIDATION","ps":"BOTH",'
    b'"cp":false,"pP":false,"si":0,"ss":0,"rp":"-120.50000000","V":"NONE","pm":"NONE","gtd":0,'
    b'"er":"0"}}'
)

TRADE_LITE = (
    b'{"e":"TRADE_LITE","E":1721895408092,"T":1721895408214,"s":"BTCUSDT","q":"0.001","p":"0",'
    b'"m":false,"c":"z8hcUoOsqEdKMeKPSABslD","S":"BUY","L":"64089.20","l":"0.040",'
    b'"t":109100866,"i":8886774}'
)

ACCOUNT_UPDATE = (
    b'{"e":"ACCOUNT_UPDATE","E":1564745798939,"T":1564745798938,'
    b'"a":{"m":"ORDER","B":[{"a":"USDT","wb":"122624.12345678","cw":"100.12345678",'
    b'"bc":"50.12345678"}],"P":[{"s":"BTCUSDT","pa":"0","ep":"0.00000","bep":"0","cr":"200",'
    b'"up":"0","mt":"isolated","iw":"0.00000000","ps":"BOTH"},{"s":"ETHUSDT","pa":"-1.5",'
    b'"ep":"2400.10","bep":"2401","cr":"0","up":"3.2","mt":"cross","iw":"0","ps":"SHORT"}]}}'
)

ACCOUNT_UPDATE_FUNDING = (
    b'{"e":"ACCOUNT_UPDATE","E":1564745798939,"T":1564745798938,'
    b'"a":{"m":"FUNDING_FEE","B":[{"a":"USDT","wb":"1.0","cw":"1.0","bc":"0"}],"S":"BTCUSDT"}}'
)

LISTEN_KEY_EXPIRED = (
    b'{"e":"listenKeyExpired","E":1736996475556,'
    b'"listenKey":"WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"}'
)
LISTEN_KEY_EXPIRED_STRING_E = b'{"e":"listenKeyExpired","E":"1736996475556","listenKey":"abc"}'

MARGIN_CALL = (
    b'{"e":"MARGIN_CALL","E":1587727187525,"cw":"3.16812045",'
    b'"p":[{"s":"ETHUSDT","ps":"LONG","pa":"1.327","mt":"CROSSED","iw":"0","mp":"187.17127",'
    b'"up":"-1.166074","mm":"1.614445"}]}'
)

ACCOUNT_CONFIG_LEVERAGE = (
    b'{"e":"ACCOUNT_CONFIG_UPDATE","E":1611646737479,"T":1611646737476,"ac":{"s":"BTCUSDT","l":25}}'
)
ACCOUNT_CONFIG_MULTI_ASSETS = (
    b'{"e":"ACCOUNT_CONFIG_UPDATE","E":1611646737479,"T":1611646737476,"ai":{"j":true}}'
)

STRATEGY_UPDATE = (
    b'{"e":"STRATEGY_UPDATE","T":1669261797627,"E":1669261797628,'
    b'"su":{"si":176054594,"st":"GRID","ss":"NEW","s":"BTCUSDT","ut":1669261797627,"c":8007}}'
)

GRID_UPDATE = (
    b'{"e":"GRID_UPDATE","T":1669262908216,"E":1669262908218,'
    b'"gu":{"si":176057039,"st":"GRID","ss":"WORKING","s":"BTCUSDT","r":"-0.00300716",'
    b'"up":"16720","uq":"-0.001","uf":"-0.00300716","mp":"0.0","ut":1669262908197}}'
)

CONDITIONAL_ORDER_TRIGGER_REJECT = (
    b'{"e":"CONDITIONAL_ORDER_TRIGGER_REJECT","E":1685517224945,"T":1685517224955,'
    b'"or":{"s":"ETHUSDT","i":155618472834,'
    b'"r":"Due to the order could not be filled immediately, the FOK order has been rejected."}}'
)

ALGO_UPDATE_CANCELED = (
    b'{"e":"ALGO_UPDATE","T":1750515742297,"E":1750515742303,'
    b'"o":{"caid":"Q5xaq5EGKgXXa0fD7fs0Ip","aid":2148719,"at":"CONDITIONAL","o":"TAKE_PROFIT",'
    b'"s":"BNBUSDT","S":"SELL","ps":"BOTH","f":"GTC","q":"0.01","X":"CANCELED","ai":"",'
    b'"ap":"0.00000","aq":"0.00000","act":"0","tp":"750","p":"750","V":"EXPIRE_MAKER",'
    b'"wt":"CONTRACT_PRICE","pm":"NONE","cp":false,"pP":false,"R":false,"tt":0,"gtd":0,'
    b'"rm":"Reduce Only reject"}}'
)

ALGO_UPDATE_TRIGGERED = (
    b'{"e":"ALGO_UPDATE","T":1789478500101,"E":1789478500105,'
    b'"o":{"caid":"sl-7f3a91","aid":1000000246753436,"at":"CONDITIONAL","o":"STOP_MARKET",'
    b'"s":"ETHUSDT","S":"SELL","ps":"BOTH","f":"GTC","q":"1.103","X":"TRIGGERED",'
    b'"ai":"8389765543210","ap":"0.00","aq":"0.000","act":"MARKET","tp":"2400.00","p":"0",'
    b'"V":"EXPIRE_MAKER","wt":"MARK_PRICE","pm":"NONE","cp":false,"pP":false,"R":true,'
    b'"tt":1789478500099,"gtd":0,"rm":"","ia":false}}'
)

ALL_EVENTS = {
    "ORDER_TRADE_UPDATE": ORDER_TRADE_UPDATE_FILL,
    "TRADE_LITE": TRADE_LITE,
    "ACCOUNT_UPDATE": ACCOUNT_UPDATE,
    "ACCOUNT_CONFIG_UPDATE": ACCOUNT_CONFIG_LEVERAGE,
    "MARGIN_CALL": MARGIN_CALL,
    "listenKeyExpired": LISTEN_KEY_EXPIRED,
    "ALGO_UPDATE": ALGO_UPDATE_TRIGGERED,
    "STRATEGY_UPDATE": STRATEGY_UPDATE,
    "GRID_UPDATE": GRID_UPDATE,
    "CONDITIONAL_ORDER_TRIGGER_REJECT": CONDITIONAL_ORDER_TRIGGER_REJECT,
}


def combined(frame: bytes, stream: str = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1") -> bytes:
    """The combined-stream envelope of ``frame`` (``/private/stream``)."""
    return b'{"stream":"' + stream.encode() + b'","data":' + frame + b"}"


def reordered(frame: bytes) -> bytes:
    """The same event with ``e`` not first (defeats the fast header path)."""
    import msgspec

    obj = msgspec.json.decode(frame)
    e = obj.pop("e")
    obj["e"] = e
    return msgspec.json.encode(obj)
