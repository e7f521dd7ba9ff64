--[[
  rate-limit: admits at most `limit` distinct records per key and fixed window. The set
  holds the ids of admitted records only, so a replayed record gets the same answer.

  KEYS[1]  window set       <prefix>sf:v1:rl:<scope>:<templated key>:<window start ms>
  ARGV[1]  record id
  ARGV[2]  limit            (records admitted per window)
  ARGV[3]  TTL, ms          (at least the window length)

  Returns 1 when the record is admitted, 0 when it is over the limit.
]]
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 1
end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
