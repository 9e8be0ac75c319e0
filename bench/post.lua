-- wrk script for the POST scenario: a 1,024-byte JSON body to /echo.
-- '{"payload":"' (12 bytes) + 1010 x 'a' + '"}' (2 bytes) = 1024 bytes.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"payload":"' .. string.rep("a", 1010) .. '"}'
