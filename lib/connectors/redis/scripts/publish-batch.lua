--[[
  publish-batch: publishes a batch's messages in order, one call for many messages (ioredis
  spends several µs of Node CPU per pipelined command; one script call carries hundreds).

  KEYS: none (channels are not keys; on Redis Cluster PUBLISH reaches every node)
  ARGV[1], ARGV[2], ...  pairs: channel, message
  Returns the number of subscribers that received a message, summed over the batch.
]]

local call, n = redis.call, 0
for i = 1, #ARGV, 2 do
  n = n + call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return n
