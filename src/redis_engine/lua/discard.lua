-- No channel is joined to the chat any more: forget it unless active. ARGV: chat.
return discard(ARGV[1]) and 1 or 0
