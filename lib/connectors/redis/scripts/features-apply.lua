--[[
  features-apply: applies merged feature updates to entity hashes of feature views. Each
  update is what a run of records (in partition order) contributes to one entity: the sink
  merges a batch per entity in Node (lib/features/algebra.ts) and sends one update per
  entity, so Redis does one read and one write per entity, not per record.

  KEYS[1], KEYS[2], ...  entity hash of each update, <prefix>sf:v1:fv:<view>:<entity id>
  ARGV[1], ARGV[2], ...  for each KEYS[i], in order, a group:
           n                  number of ARGV items in this group, n included
           watermark field    @o:<cluster>:<topic>:<partition> (in the entity hash)
           first offset, seq  position of the update's first record ((offset, seq): seq numbers
           last offset, seq   the records one offset produced for this entity)
           entity TTL, s      (0: the hash never expires; else refreshed on every write)
           then per feature: kind, name, and by kind
             counter          sum, newest event time
             latest           JSON text, its event time
             min | max        value, its event time
             last_n           n, k, then k pairs (JSON text, event time), newest first
             window_*         window ms, windows kept, newest event time, its window start,
                              k, then k pairs (window start, amount)

  Returns an array: per KEYS[i], 1 when applied, 0 when every record of the update was
  applied already, or the stored watermark "<offset>:<seq>" when only the records up to it
  were (a replayed batch that ends elsewhere than the first try): the caller then sends the
  records after it as a new update. Nothing is changed in that case.
  Replays: a partition is consumed in order and batches are retried whole, so a record at or
  below the entity's watermark for its partition was applied already. The watermark lives in
  the entity hash (one field per source partition): no key per record, nothing to expire.
  Semantics are those of lib/features/algebra.ts `applyMerged`: latest keeps the newest by
  event time (a tie: the later record); min/max replace only when strictly better; last_n
  keeps the n newest; windows keep the last `kept` windows up to the newest one seen.
  Cost per update: one HMGET, one HSET, (HDEL), (EXPIRE).
]]

local function fmt(x)
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format('%.0f', x) end
  return string.format('%.15g', x)
end

local function after(o1, q1, o2, q2)
  return o1 > o2 or (o1 == o2 and q1 > q2)
end

-- Applies the group of ARGV items b .. b + n - 1 to one entity hash.
local function apply(entity, b, n)
  local last = b + n - 1
  local wm = ARGV[b]
  local lo, loq = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local hi, hiq = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  -- one read of every field the updates look at, the watermark first
  local want = { wm }
  local i = b + 6
  while i <= last do
    local kind, name = ARGV[i], ARGV[i + 1]
    if kind == 'counter' then
      want[#want + 1] = name
      want[#want + 1] = name .. '@t'
      i = i + 4
    elseif kind == 'latest' then
      want[#want + 1] = name .. '@t'
      i = i + 4
    elseif kind == 'min' or kind == 'max' then
      want[#want + 1] = name
      i = i + 4
    elseif kind == 'last_n' then
      want[#want + 1] = name
      want[#want + 1] = name .. '@ts'
      i = i + 4 + 2 * tonumber(ARGV[i + 3])
    else -- window_count | window_sum
      want[#want + 1] = name .. '@h'
      want[#want + 1] = name .. '@t'
      local k = tonumber(ARGV[i + 6])
      for j = i + 7, i + 6 + 2 * k, 2 do want[#want + 1] = name .. '|' .. ARGV[j] end
      i = i + 7 + 2 * k
    end
  end
  local got = redis.call('HMGET', entity, unpack(want))
  if got[1] then
    local o, q = string.match(got[1], '^(%d+):(%d+)$')
    o, q = tonumber(o), tonumber(q)
    if not after(hi, hiq, o, q) then return 0 end
    if not after(lo, loq, o, q) then return got[1] end
  end
  local cur = {}
  for j = 2, #want do cur[want[j]] = got[j] end -- a missing field is false

  local out, dels = { wm, ARGV[b + 3] .. ':' .. ARGV[b + 4] }, {}
  local function put(field, v)
    out[#out + 1] = field
    out[#out + 1] = v
  end

  i = b + 6
  while i <= last do
    local kind, name = ARGV[i], ARGV[i + 1]
    if kind == 'counter' then
      put(name, fmt((tonumber(cur[name]) or 0) + tonumber(ARGV[i + 2])))
      local old = tonumber(cur[name .. '@t'])
      if old == nil or tonumber(ARGV[i + 3]) > old then put(name .. '@t', ARGV[i + 3]) end
      i = i + 4
    elseif kind == 'latest' then
      local old = tonumber(cur[name .. '@t'])
      if old == nil or tonumber(ARGV[i + 3]) >= old then
        put(name, ARGV[i + 2])
        put(name .. '@t', ARGV[i + 3])
      end
      i = i + 4
    elseif kind == 'min' or kind == 'max' then
      local old, v = tonumber(cur[name]), tonumber(ARGV[i + 2])
      if old == nil or (kind == 'min' and v < old) or (kind == 'max' and v > old) then
        put(name, ARGV[i + 2])
        put(name .. '@t', ARGV[i + 3])
      end
      i = i + 4
    elseif kind == 'last_n' then
      local keep, k = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
      local vals, times = {}, {}
      if cur[name] then
        vals = cjson.decode(cur[name])
        times = cjson.decode(cur[name .. '@ts'])
      end
      local changed = false
      -- oldest first, each before the first kept value no newer than it (a tie came later)
      for j = i + 2 + 2 * k, i + 4, -2 do
        local t = tonumber(ARGV[j + 1])
        local pos = #times + 1
        for p = 1, #times do
          if t >= times[p] then pos = p break end
        end
        if pos <= keep then
          table.insert(vals, pos, cjson.decode(ARGV[j]))
          table.insert(times, pos, t)
          while #vals > keep do table.remove(vals) table.remove(times) end
          changed = true
        end
      end
      if changed then
        put(name, cjson.encode(vals))
        put(name .. '@ts', cjson.encode(times))
        put(name .. '@t', fmt(times[1]))
      end
      i = i + 4 + 2 * k
    else -- window_count | window_sum
      local size, kept = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
      local span = size * kept
      local newest, nhead = ARGV[i + 4], tonumber(ARGV[i + 5])
      local k = tonumber(ARGV[i + 6])
      local h0 = tonumber(cur[name .. '@h'])
      if h0 == nil or nhead > h0 - span then
        local head = h0
        if h0 == nil or nhead > h0 then
          head = nhead
          put(name .. '@h', ARGV[i + 5])
          -- the window moved on: drop kept windows that fall out of the last `kept`
          if h0 ~= nil then
            for q = 0, kept - 1 do
              local s = h0 - q * size
              if s <= head - span then dels[#dels + 1] = name .. '|' .. fmt(s) end
            end
          end
        end
        for j = i + 7, i + 6 + 2 * k, 2 do
          if tonumber(ARGV[j]) > head - span then
            local field = name .. '|' .. ARGV[j]
            put(field, fmt((tonumber(cur[field]) or 0) + tonumber(ARGV[j + 1])))
          end
        end
        local old = tonumber(cur[name .. '@t'])
        if old == nil or tonumber(newest) > old then put(name .. '@t', newest) end
      end
      i = i + 7 + 2 * k
    end
  end

  if #dels > 0 then redis.call('HDEL', entity, unpack(dels)) end
  redis.call('HSET', entity, unpack(out))
  local ttl = tonumber(ARGV[b + 5])
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
