--[[
  dedupe: claims a dedupe key for one record, so that a later record with the same key
  within the window is dropped, while a replay of the record that claimed it passes again.

  KEYS[1]  dedupe key       <prefix>sf:v1:dd:<scope>:<templated key>
  ARGV[1]  record id        (the claim's value)
  ARGV[2]  window, ms       (the key's TTL)

  Returns 1 when the record passes (first seen, or a replay of the claiming record),
  0 when another record claimed the key within the window.
]]
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
