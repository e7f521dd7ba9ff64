/**
 * Which @platformatic/kafka errors of the start's group join mean "a broker is out of reach"
 * (wait and try again, lib/connectors/kafka/platformatic/source.ts) rather than a start that
 * must fail: the client's own error classes, as it throws them after its 9 tries.
 */
import { AuthenticationError, MultipleErrors, NetworkError, ProtocolError } from "@platformatic/kafka";
import { describe, expect, it } from "vitest";
import { unreachable } from "../../lib/connectors/kafka/platformatic/source.ts";

describe("unreachable: the join errors a start waits out", () => {
  const network = () => new NetworkError("Connection to 127.0.0.1:19293 failed.");
  it("a network error, and tries that all failed so (the broker-loss test's coordinator SIGKILLed)", () => {
    expect(unreachable(network())).toBe(true);
    expect(unreachable(new MultipleErrors("joinGroup failed 9 times.", [new NetworkError("Connection closed"), network(), network()]))).toBe(true);
    expect(unreachable(new MultipleErrors("nested", [new MultipleErrors("inner", [network()]), network()]))).toBe(true);
  });
  it("not when any try was refused for another reason, nor for other errors", () => {
    expect(unreachable(new MultipleErrors("joinGroup failed 9 times.", [network(), new AuthenticationError("SASL authentication failed")]))).toBe(false);
    expect(unreachable(new AuthenticationError("SASL authentication failed"))).toBe(false);
    expect(unreachable(new ProtocolError("GROUP_AUTHORIZATION_FAILED"))).toBe(false);
    expect(unreachable(new MultipleErrors("none", []))).toBe(false);
    expect(unreachable(new Error("Connection to 127.0.0.1:19293 failed."))).toBe(false);
    expect(unreachable(undefined)).toBe(false);
  });
});
