-- pipeline workload: each write carries 16 GET requests; every response counts as one.
init = function(args)
   local r = {}
   for i = 1, 16 do
      r[i] = wrk.format(nil, wrk.path)
   end
   pipelined = table.concat(r)
end

request = function()
   return pipelined
end
