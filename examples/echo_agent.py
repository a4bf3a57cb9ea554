"""An agent that answers every text message, over the gateway.

BOTGW_TOKEN=bot_...:... python examples/echo_agent.py [ws://127.0.0.1:8081/bot/ws]
"""

import asyncio
import os
import sys

from gateway.client import GatewayClient


async def main(url: str, token: str) -> None:
    async with GatewayClient(url, token) as client:
        async for update in client:
            message = update.get("message") or {}
            if "text" in message:
                chat_id = message["chat"]["id"]
                await client.request("sendMessage", chat_id=chat_id, text=message["text"])


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8081/bot/ws",
            os.environ["BOTGW_TOKEN"],
        )
    )
