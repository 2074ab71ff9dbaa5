-- Argo CD health check for barrage.dev/ScheduledLoadTest (Lua 5.1, as Argo
-- CD runs it). Tolerant of missing fields: any of them may be absent.
--
-- Healthy while the schedule is valid and its latest finished run passed
-- (or none has finished yet), Degraded when the spec is invalid or the
-- latest finished run did not pass, Suspended while spec.suspend is true,
-- Progressing until the operator has seen it or while its first run runs.
local hs = {}

local function condition(st, type_)
  if st.conditions == nil then
    return nil
  end
  for _, c in ipairs(st.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function finished(phase)
  return phase == "Succeeded" or phase == "Failed" or phase == "Aborted"
end

-- The latest finished run of the history: the newest scheduledTime
-- (RFC 3339 times in UTC sort as strings), whatever the list's order.
local function latest_finished(st)
  local best = nil
  if st.history == nil then
    return nil
  end
  for _, r in ipairs(st.history) do
    if finished(r.phase) then
      if best == nil or tostring(r.scheduledTime or "") > tostring(best.scheduledTime or "") then
        best = r
      end
    end
  end
  return best
end

local function active_names(st)
  local names = {}
  if st.active ~= nil then
    for _, a in ipairs(st.active) do
      table.insert(names, tostring(a.name))
    end
  end
  return names
end

local suspended = obj.spec ~= nil and obj.spec.suspend == true
local st = obj.status
if st == nil then
  if suspended then
    hs.status = "Suspended"
    hs.message = "Suspended: no runs start"
  else
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to schedule the first run"
  end
  return hs
end

local ready = condition(st, "Ready")
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.message or ready.reason or "the schedule is not ready"
  return hs
end

local last = latest_finished(st)
local last_passed = condition(st, "LastRunPassed")
local verdict = nil
local last_text = nil
if last_passed ~= nil then
  verdict = last_passed.status == "True" and "Passed" or "Failed"
  last_text = last_passed.message
elseif st.lastVerdict ~= nil then
  verdict = st.lastVerdict
elseif last ~= nil then
  verdict = last.verdict or "no verdict"
end
if last_text == nil and last ~= nil then
  last_text = tostring(last.name) .. " (" .. tostring(last.phase) .. "): " .. tostring(last.verdict or "no verdict")
end
if last_text == nil and verdict ~= nil then
  last_text = verdict
end

if suspended or (condition(st, "Suspended") ~= nil and condition(st, "Suspended").status == "True") then
  hs.status = "Suspended"
  if last_text ~= nil then
    hs.message = "Suspended; last run " .. last_text
  else
    hs.message = "Suspended: no runs start"
  end
  return hs
end

if verdict ~= nil and verdict ~= "Passed" then
  hs.status = "Degraded"
  hs.message = "Last run did not pass: " .. last_text
  return hs
end

local active = active_names(st)
if verdict == nil then
  if #active > 0 then
    hs.status = "Progressing"
    hs.message = "First run in progress: " .. table.concat(active, ", ")
  else
    hs.status = "Healthy"
    if st.nextScheduleTime ~= nil then
      hs.message = "No run yet; next run at " .. st.nextScheduleTime
    else
      hs.message = "No run yet"
    end
  end
  return hs
end

hs.status = "Healthy"
hs.message = "Last run passed: " .. last_text
if #active > 0 then
  hs.message = hs.message .. "; in progress: " .. table.concat(active, ", ")
elseif st.nextScheduleTime ~= nil then
  hs.message = hs.message .. "; next run at " .. st.nextScheduleTime
end
return hs
