"""IB's own Python client (`ibapi`, a dev-only dependency) as a strict checker of the embedded gateway's messages.

Imported by the gateway tests, and loaded by path from `nbs/07b_gateway_messages.ipynb`; the runtime package does not
depend on ibapi. `decode_with_ib_async`, its twin for the runtime client, stays in `hydra_nb.gateway_messages`."""
from hydra_nb.gateway_wire import DEFAULT_SERVER_VERSION, ProtocolError, encode_message
from hydra_nb.gateway_messages import decode_with_ib_async


def decode_with_ibapi(fields: list, sv: int = DEFAULT_SERVER_VERSION) -> list[tuple[str, tuple]]:
    "Decode one message with IB's own Python client (ibapi), strictly; return the wrapper calls."
    import inspect
    from ibapi import comm
    from ibapi.decoder import Decoder
    from ibapi.wrapper import EWrapper
    calls = []
    w = EWrapper()
    for name, _ in inspect.getmembers(EWrapper, inspect.isfunction):
        if not name.startswith("_"): setattr(w, name, (lambda n: lambda *a: calls.append((n, a)))(name))
    dec = Decoder(w, sv)
    size, msg, rest = comm.read_msg(encode_message(fields))
    if rest or not msg: raise ProtocolError("frame not read back whole")
    msg_id = int(msg[:msg.index(b"\0")]); body = comm.read_fields(msg[msg.index(b"\0") + 1:])
    hi = dec.msgId2handleInfo.get(msg_id)
    if hi is None: raise ProtocolError(f"ibapi has no handler for message id {msg_id}")
    if hi.wrapperMeth is not None:
        if len(body) != len(hi.wrapperParams):
            raise ProtocolError(f"ibapi {hi.wrapperMeth.__name__}: {len(body)} fields, expects {len(hi.wrapperParams)} "
                                f"(version + {len(hi.wrapperParams) - 1})")
        dec.interpretWithSignature(body, hi)
    else:
        it = iter(body)
        try: hi.processMeth(dec, it)
        except Exception as e: raise ProtocolError(f"ibapi failed on message {msg_id}: {e!r}") from e
        left = list(it)
        if left: raise ProtocolError(f"ibapi left {len(left)} unread fields in message {msg_id}: {left[:5]}")
    if not calls: raise ProtocolError(f"ibapi made no wrapper call for message {msg_id}")
    return calls


def check_message(fields: list, sv: int = DEFAULT_SERVER_VERSION) -> tuple[list, list]:
    "Both clients' wrapper calls for one message; raises ProtocolError if either cannot consume it exactly."
    return decode_with_ibapi(fields, sv), decode_with_ib_async(fields, sv)
