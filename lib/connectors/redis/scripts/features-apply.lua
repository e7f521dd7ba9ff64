--[[
  features-apply: applies records' feature updates to entities of feature views, each
  record at most once. One call carries up to a chunk of records (one EVALSHA for many
  records: the per-call cost of Redis is paid once per chunk, not once per record).

  KEYS[1], KEYS[2], ...  entity hash of each update, <prefix>sf:v1:fv:<view>:<entity id>
  ARGV[1], ARGV[2], ...  for each KEYS[i], in order, a group:
           n                  number of ARGV items in this group, n included
           watermark field    @o:<topic>:<partition> (in the entity hash)
           record offset      (its source partition's offset, an integer)
           record sequence    (0, 1, ... for the records one offset produced for this entity)
           entity TTL, s      (0: the hash never expires; else refreshed on every write)
           event time, ms     (epoch ms, an integer)
           then 4 items per feature update: kind, name, value, param
             latest        value = JSON text                      param = ""
             counter       value = number to add (may be < 0)     param = ""
             min | max     value = number                         param = ""
             last_n        value = JSON text                      param = n
             window_*      value = number to add (1 for count)    param = "<bucket start>:<window ms>:<buckets kept>"

  Returns an array: per KEYS[i], 1 when applied, 0 when the record was applied already.
  Replays: a partition is consumed in order and batches are retried whole, so a record at or
  below the entity's watermark for its partition was applied already. The watermark lives in
  the entity hash (one field per source partition): no key per record, nothing to expire.
  Order safety: a `latest` value with an older event time than the stored one is ignored;
  last_n keeps the n newest values by event time; window updates older than the kept
  windows are ignored. Counters, min and max do not depend on order.
  Errors: a malformed group raises an error; updates of earlier groups stay applied and
  their watermarks make a retry skip them.
  Cost per update: one HMGET of every field involved, one HSET, (HDEL), (EXPIRE).
]]

local function fmt(x)
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format('%.0f', x) end
  return string.format('%.15g', x)
end

-- Applies the group of ARGV items b .. b + n - 1 to one entity hash; returns 1 or 0.
local function apply(entity, b, n)
  local last = b + n - 1
  local wm, offset, seq = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local t, tstr = tonumber(ARGV[b + 4]), ARGV[b + 4]
  -- one read of every field the updates look at, the watermark first
  local want = { wm }
  for i = b + 5, last, 4 do
    local kind, name = ARGV[i], ARGV[i + 1]
    want[#want + 1] = name
    want[#want + 1] = name .. '@t'
    if kind == 'last_n' then
      want[#want + 1] = name .. '@ts'
    elseif kind == 'window_count' or kind == 'window_sum' then
      want[#want + 1] = name .. '@h'
      want[#want + 1] = name .. '|' .. string.match(ARGV[i + 3], '^(%d+):')
    end
  end
  local got = redis.call('HMGET', entity, unpack(want))
  if got[1] then
    local o, q = string.match(got[1], '^(%d+):(%d+)$')
    o, q = tonumber(o), tonumber(q)
    if offset < o or (offset == o and seq <= q) then return 0 end
  end
  local cur = {}
  for j = 1, #want do cur[want[j]] = got[j] end -- a missing field is false

  local out, dels = {}, {}
  local function put(field, v)
    cur[field] = v
    out[#out + 1] = field
    out[#out + 1] = v
  end
  local function touch_time(name)
    local old = tonumber(cur[name .. '@t'])
    if old == nil or t > old then put(name .. '@t', tstr) end
  end

  put(wm, ARGV[b + 1] .. ':' .. ARGV[b + 2])
  for i = b + 5, last, 4 do
    local kind, name, value, param = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if kind == 'latest' then
      local old = tonumber(cur[name .. '@t'])
      if old == nil or t >= old then
        put(name, value)
        put(name .. '@t', tstr)
      end
    elseif kind == 'counter' then
      put(name, fmt((tonumber(cur[name]) or 0) + tonumber(value)))
      touch_time(name)
    elseif kind == 'min' or kind == 'max' then
      local old, v = tonumber(cur[name]), tonumber(value)
      if old == nil or (kind == 'min' and v < old) or (kind == 'max' and v > old) then
        put(name, value)
        put(name .. '@t', tstr)
      end
    elseif kind == 'last_n' then
      local n = tonumber(param)
      local vals, times = {}, {}
      if cur[name] then
        vals = cjson.decode(cur[name])
        times = cjson.decode(cur[name .. '@ts'])
      end
      -- newest first; a value with an equal event time goes before it (later offset)
      local pos = #times + 1
      for j = 1, #times do
        if t >= times[j] then pos = j break end
      end
      if pos <= n then
        table.insert(vals, pos, cjson.decode(value))
        table.insert(times, pos, t)
        while #vals > n do table.remove(vals) table.remove(times) end
        put(name, cjson.encode(vals))
        put(name .. '@ts', cjson.encode(times))
        put(name .. '@t', fmt(times[1]))
      end
    else -- window_count | window_sum
      local bs, size, keep = string.match(param, '^(%d+):(%d+):(%d+)$')
      local b = tonumber(bs)
      size, keep = tonumber(size), tonumber(keep)
      local head = tonumber(cur[name .. '@h'])
      if head == nil or b > head - keep * size then
        if head == nil or b > head then
          -- the window moved on: drop kept windows that fall out of the last `keep`
          if head ~= nil then
            for k = 0, keep - 1 do
              local s = head - k * size
              if s <= b - keep * size then dels[#dels + 1] = name .. '|' .. fmt(s) end
            end
          end
          put(name .. '@h', bs)
        end
        local field = name .. '|' .. bs
        put(field, fmt((tonumber(cur[field]) or 0) + tonumber(value)))
        touch_time(name)
      end
    end
  end

  if #dels > 0 then redis.call('HDEL', entity, unpack(dels)) end
  if #out > 0 then redis.call('HSET', entity, unpack(out)) end
  local ttl = tonumber(ARGV[b + 3])
  if ttl > 0 then redis.call('EXPIRE', entity, ttl) end
  return 1
end

local results, b = {}, 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[b])
  results[k] = apply(KEYS[k], b + 1, n - 1)
  b = b + n
end
return results
