"""The chat's durable objects: ChatRoom and RateLimiter."""
