//+------------------------------------------------------------------+
//| MirrorWebhook.mq5                                                |
//| Posts this account's trade events to a Mirror webhook            |
//| (`kind = "metatrader_ea"`) with WebRequest, for terminals where  |
//| Mirror's bridge EA cannot reach the engine.                      |
//|                                                                  |
//| Setup: Tools > Options > Expert Advisors > "Allow WebRequest for |
//| listed URL" and add the webhook's address (scheme and host);     |
//| attach the EA to any one chart; WebhookUrl is                    |
//| https://<mirror>/webhooks/ea/<name> and Secret the webhook's     |
//| secret (sent in the X-Mirror-Secret header).                     |
//|                                                                  |
//| What is reported: positions opened (market, or filled from a     |
//| pending order), added to, partly or fully closed, their SL/TP    |
//| changed; pending orders placed and cancelled. Not reported: a    |
//| pending order moved after it was placed. On a netting account a  |
//| pending order that fills into an existing position is reported   |
//| as its cancel and a market add.                                  |
//|                                                                  |
//| Delivery: events are numbered (seq) from the clock in            |
//| milliseconds, never reused even across restarts (the last number |
//| is kept in a terminal global variable), queued (at most          |
//| QueueMax; beyond, the oldest is dropped with a message) and      |
//| posted in batches. A 2xx answer removes them; 5xx, 429 and       |
//| network failures are retried with a growing delay, and Mirror    |
//| skips what it already executed by seq; a 422 names the event     |
//| that cannot be executed, which is dropped and the rest resent.   |
//|                                                                  |
//| Mirror reads exactly the fields the Event_<type> and Batch_json  |
//| functions write: a test in Mirror compares their field names     |
//| with the webhook's schema.                                       |
//+------------------------------------------------------------------+
#property copyright   "Mirror"
#property link        "https://github.com/mirror-trading/mirror"
#property version     "1.00"
#property description "Posts this account's trades to a Mirror webhook. Add the webhook's host to the WebRequest URL list."

input string WebhookUrl = "https://127.0.0.1:8080/webhooks/ea/my-terminal";   // Webhook address
input string Secret     = "";      // The webhook's secret (at least 16 characters)
input int    TimerMs    = 500;     // How often the queue is posted and trades are scanned, ms
input int    TimeoutMs  = 5000;    // Longest wait for Mirror's answer, ms
input int    BatchMax   = 50;      // Most events in one post
input int    QueueMax   = 2000;    // Most events waiting; beyond, the oldest is dropped
input int    RetryMinMs = 1000;    // First retry delay, ms (doubles after each failure)
input int    RetryMaxMs = 60000;   // Longest retry delay, ms

//--- what the EA has reported of each position and pending order (the diff base)
struct KnownPosition
  {
   ulong             ticket;
   long              identifier;
   string            symbol;
   long              type;
   double            volume;
   double            sl;
   double            tp;
  };

struct KnownOrder
  {
   ulong             ticket;
   string            symbol;
   long              type;
   double            volume;
   double            price;
   double            sl;
   double            tp;
  };

//--- an event waiting to be posted
struct Queued
  {
   long              seq;
   string            json;
  };

KnownPosition g_pos[];
int           g_posCount = 0;
KnownOrder    g_ord[];
int           g_ordCount = 0;
Queued        g_queue[];
int           g_queueCount = 0;
long          g_seq = 0;
string        g_seqVar = "";
uint          g_nextTry = 0;
uint          g_backoff = 0;
int           g_batchLimit = 0;

//+------------------------------------------------------------------+
//| JSON writing: one object at a time, fields appended in order     |
//+------------------------------------------------------------------+
string JEscape(const string text)
  {
   string out = "";
   int n = StringLen(text);
   for(int i = 0; i < n; i++)
     {
      ushort c = StringGetCharacter(text, i);
      if(c == '"')
         out += "\\\"";
      else if(c == '\\')
         out += "\\\\";
      else if(c < 0x20)
         out += StringFormat("\\u%04x", c);
      else
         out += ShortToString(c);
     }
   return out;
  }

void JSep(string &o)
  {
   if(StringLen(o) > 1)
      o += ",";
  }

void JStr(string &o, const string name, const string value)
  {
   JSep(o);
   o += "\"" + name + "\":\"" + JEscape(value) + "\"";
  }

void JInt(string &o, const string name, const long value)
  {
   JSep(o);
   o += "\"" + name + "\":" + IntegerToString(value);
  }

//--- a decimal as text, so that no float reaches Mirror
void JDec(string &o, const string name, const double value, const int digits)
  {
   JSep(o);
   o += "\"" + name + "\":\"" + DoubleToString(value, digits) + "\"";
  }

//--- a stop loss or take profit: "0" when there is none
void JLevel(string &o, const string name, const double value, const int digits)
  {
   JSep(o);
   o += "\"" + name + "\":\"" + (value > 0.0 ? DoubleToString(value, digits) : "0") + "\"";
  }

void JRaw(string &o, const string name, const string raw)
  {
   JSep(o);
   o += "\"" + name + "\":" + raw;
  }

string JClose(const string o)
  {
   return o + "}";
  }

//+------------------------------------------------------------------+
//| Formatting                                                       |
//+------------------------------------------------------------------+
int Digits_(const string symbol)
  {
   return (int)SymbolInfoInteger(symbol, SYMBOL_DIGITS);
  }

//--- decimals of the symbol's volume step (0.01 -> 2)
int VolDigits(const string symbol)
  {
   double step = SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP);
   for(int d = 0; d < 8; d++)
     {
      double scaled = step * MathPow(10.0, d);
      if(MathAbs(scaled - MathRound(scaled)) < 1e-7)
         return d;
     }
   return 8;
  }

string SideOf(const long positionType)
  {
   return positionType == POSITION_TYPE_BUY ? "buy" : "sell";
  }

string PendingTypeName(const long type)
  {
   if(type == ORDER_TYPE_BUY_LIMIT)
      return "buy_limit";
   if(type == ORDER_TYPE_SELL_LIMIT)
      return "sell_limit";
   if(type == ORDER_TYPE_BUY_STOP)
      return "buy_stop";
   if(type == ORDER_TYPE_SELL_STOP)
      return "sell_stop";
   return "";
  }

//--- the next event number: above the last one, and at least the clock in ms, so numbers
//--- keep increasing across restarts even if the global variable is lost
long NextSeq()
  {
   long clock = (long)TimeGMT() * 1000;
   g_seq = (g_seq + 1 > clock) ? g_seq + 1 : clock;
   GlobalVariableSet(g_seqVar, (double)g_seq);
   return g_seq;
  }

//+------------------------------------------------------------------+
//| Events: Mirror reads exactly these fields                        |
//+------------------------------------------------------------------+
string Event_open(const long seq, const KnownPosition &p, const double lots, const double price, const ulong fromOrder)
  {
   int digits = Digits_(p.symbol);
   string o = "{";
   JInt(o, "seq", seq);
   JStr(o, "type", "open");
   JInt(o, "ticket", (long)p.ticket);
   JStr(o, "symbol", p.symbol);
   JStr(o, "side", SideOf(p.type));
   JDec(o, "lots", lots, VolDigits(p.symbol));
   JDec(o, "price", price, digits);
   JLevel(o, "sl", p.sl, digits);
   JLevel(o, "tp", p.tp, digits);
   JInt(o, "order", (long)fromOrder);
   JInt(o, "time", (long)TimeGMT());
   return JClose(o);
  }

string Event_close(const long seq, const KnownPosition &p, const double lots, const double lotsBefore)
  {
   int vd = VolDigits(p.symbol);
   string o = "{";
   JInt(o, "seq", seq);
   JStr(o, "type", "close");
   JInt(o, "ticket", (long)p.ticket);
   JDec(o, "lots", lots, vd);
   JDec(o, "lots_before", lotsBefore, vd);
   JInt(o, "time", (long)TimeGMT());
   return JClose(o);
  }

string Event_modify(const long seq, const KnownPosition &p)
  {
   int digits = Digits_(p.symbol);
   string o = "{";
   JInt(o, "seq", seq);
   JStr(o, "type", "modify");
   JInt(o, "ticket", (long)p.ticket);
   JLevel(o, "sl", p.sl, digits);
   JLevel(o, "tp", p.tp, digits);
   JInt(o, "time", (long)TimeGMT());
   return JClose(o);
  }

string Event_pending(const long seq, const KnownOrder &k)
  {
   int digits = Digits_(k.symbol);
   string o = "{";
   JInt(o, "seq", seq);
   JStr(o, "type", "pending");
   JInt(o, "ticket", (long)k.ticket);
   JStr(o, "symbol", k.symbol);
   JStr(o, "order_type", PendingTypeName(k.type));
   JDec(o, "price", k.price, digits);
   JDec(o, "lots", k.volume, VolDigits(k.symbol));
   JLevel(o, "sl", k.sl, digits);
   JLevel(o, "tp", k.tp, digits);
   JInt(o, "time", (long)TimeGMT());
   return JClose(o);
  }

string Event_cancel(const long seq, const ulong ticket)
  {
   string o = "{";
   JInt(o, "seq", seq);
   JStr(o, "type", "cancel");
   JInt(o, "ticket", (long)ticket);
   JInt(o, "time", (long)TimeGMT());
   return JClose(o);
  }

string Batch_json(const string events)
  {
   string o = "{";
   JInt(o, "login", AccountInfoInteger(ACCOUNT_LOGIN));
   JStr(o, "server", AccountInfoString(ACCOUNT_SERVER));
   JStr(o, "platform", "mt5");
   JRaw(o, "events", events);
   return JClose(o);
  }

//+------------------------------------------------------------------+
//| The queue                                                        |
//+------------------------------------------------------------------+
void Enqueue(const long seq, const string json)
  {
   if(g_queueCount >= QueueMax)
     {
      PrintFormat("MirrorWebhook: more than %d events wait; event %I64d is dropped (Mirror is unreachable)",
                  QueueMax, g_queue[0].seq);
      DropFront(1);
     }
   ArrayResize(g_queue, g_queueCount + 1);
   g_queue[g_queueCount].seq = seq;
   g_queue[g_queueCount].json = json;
   g_queueCount++;
  }

void DropFront(const int count)
  {
   int n = (int)MathMin(count, g_queueCount);
   for(int i = n; i < g_queueCount; i++)
      g_queue[i - n] = g_queue[i];
   g_queueCount -= n;
   ArrayResize(g_queue, g_queueCount);
  }

void DropAt(const int index)
  {
   if(index < 0 || index >= g_queueCount)
      return;
   for(int i = index + 1; i < g_queueCount; i++)
      g_queue[i - 1] = g_queue[i];
   g_queueCount--;
   ArrayResize(g_queue, g_queueCount);
  }

void RetryLater()
  {
   g_backoff = (g_backoff == 0) ? (uint)RetryMinMs : (uint)MathMin((double)g_backoff * 2.0, (double)RetryMaxMs);
   g_nextTry = GetTickCount() + g_backoff;
  }

//--- the index N of "events[N]" in a refusal, or -1
int RefusedIndex(const string answer)
  {
   int at = StringFind(answer, "events[");
   if(at < 0)
      return -1;
   int end = StringFind(answer, "]", at);
   if(end < 0)
      return -1;
   return (int)StringToInteger(StringSubstr(answer, at + 7, end - at - 7));
  }

//--- posts the oldest waiting events as one batch
void Flush()
  {
   if(g_queueCount == 0 || (g_nextTry != 0 && (int)(GetTickCount() - g_nextTry) < 0))
      return;
   int count = (int)MathMin(g_queueCount, g_batchLimit > 0 ? g_batchLimit : BatchMax);
   string events = "[";
   for(int i = 0; i < count; i++)
     {
      if(i > 0)
         events += ",";
      events += g_queue[i].json;
     }
   events += "]";
   string body = Batch_json(events);
   char data[];
   int length = StringToCharArray(body, data, 0, WHOLE_ARRAY, CP_UTF8);
   ArrayResize(data, length > 0 ? length - 1 : 0);   // no terminating zero on the wire
   char result[];
   string resultHeaders;
   string headers = "Content-Type: application/json\r\nX-Mirror-Secret: " + Secret + "\r\n";
   ResetLastError();
   int status = WebRequest("POST", WebhookUrl, headers, TimeoutMs, data, result, resultHeaders);
   string answer = CharArrayToString(result, 0, WHOLE_ARRAY, CP_UTF8);
   if(status >= 200 && status < 300)
     {
      DropFront(count);
      g_backoff = 0;
      g_nextTry = 0;
      g_batchLimit = 0;
      return;
     }
   if(status == -1)
     {
      int error = GetLastError();
      if(error == 4014)
         Print("MirrorWebhook: add the webhook's address to Tools > Options > Expert Advisors > allowed URLs");
      else
         PrintFormat("MirrorWebhook: posting failed (error %d); retrying", error);
      RetryLater();
      return;
     }
   if(status == 422)
     {
      // One event cannot be executed as written: drop it, resend the others.
      int index = RefusedIndex(answer);
      PrintFormat("MirrorWebhook: event refused, dropped: %s", answer);
      if(index >= 0 && index < count)
         DropAt(index);
      else
         DropFront(count);
      return;
     }
   if(status == 413 && count > 1)
     {
      g_batchLimit = (int)MathMax(1, count / 2);
      return;
     }
   if(status == 400)
     {
      PrintFormat("MirrorWebhook: Mirror cannot read the batch, dropped: %s", answer);
      DropFront(count);
      return;
     }
   // 401/403/404 (fix the inputs or the webhook), 429 and 5xx: the events stay and are retried.
   PrintFormat("MirrorWebhook: HTTP %d, retrying: %s", status, answer);
   RetryLater();
  }

//--- each event numbered, then queued
void ReportOpen(const KnownPosition &p, const double lots, const double price, const ulong fromOrder)
  {
   long seq = NextSeq();
   Enqueue(seq, Event_open(seq, p, lots, price, fromOrder));
  }

void ReportClose(const KnownPosition &p, const double lots, const double lotsBefore)
  {
   long seq = NextSeq();
   Enqueue(seq, Event_close(seq, p, lots, lotsBefore));
  }

void ReportModify(const KnownPosition &p)
  {
   long seq = NextSeq();
   Enqueue(seq, Event_modify(seq, p));
  }

void ReportPending(const KnownOrder &k)
  {
   long seq = NextSeq();
   Enqueue(seq, Event_pending(seq, k));
  }

void ReportCancel(const ulong ticket)
  {
   long seq = NextSeq();
   Enqueue(seq, Event_cancel(seq, ticket));
  }

//+------------------------------------------------------------------+
//| Detecting trades: the terminal's positions and pending orders    |
//| are compared with what was reported                              |
//+------------------------------------------------------------------+
int FindPos(const ulong ticket)
  {
   for(int i = 0; i < g_posCount; i++)
      if(g_pos[i].ticket == ticket)
         return i;
   return -1;
  }

int FindOrd(const ulong ticket)
  {
   for(int i = 0; i < g_ordCount; i++)
      if(g_ord[i].ticket == ticket)
         return i;
   return -1;
  }

void RemovePos(const int index)
  {
   for(int i = index + 1; i < g_posCount; i++)
      g_pos[i - 1] = g_pos[i];
   g_posCount--;
   ArrayResize(g_pos, g_posCount);
  }

void RemoveOrd(const int index)
  {
   for(int i = index + 1; i < g_ordCount; i++)
      g_ord[i - 1] = g_ord[i];
   g_ordCount--;
   ArrayResize(g_ord, g_ordCount);
  }

void ScanPositions(const bool report)
  {
   int total = PositionsTotal();
   int seen[];
   ArrayResize(seen, g_posCount);
   if(g_posCount > 0)
      ArrayInitialize(seen, 0);
   for(int i = 0; i < total; i++)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket == 0)
         continue;
      KnownPosition now;
      now.ticket = ticket;
      now.identifier = PositionGetInteger(POSITION_IDENTIFIER);
      now.symbol = PositionGetString(POSITION_SYMBOL);
      now.type = PositionGetInteger(POSITION_TYPE);
      now.volume = PositionGetDouble(POSITION_VOLUME);
      now.sl = PositionGetDouble(POSITION_SL);
      now.tp = PositionGetDouble(POSITION_TP);
      int k = FindPos(ticket);
      if(k < 0)
        {
         // A pending order this EA reported, filled into a new position (same identifier).
         ulong fromOrder = 0;
         int o = FindOrd((ulong)now.identifier);
         if(o >= 0)
           {
            fromOrder = g_ord[o].ticket;
            RemoveOrd(o);
           }
         if(report)
            ReportOpen(now, now.volume, PositionGetDouble(POSITION_PRICE_OPEN), fromOrder);
         ArrayResize(g_pos, g_posCount + 1);
         ArrayResize(seen, g_posCount + 1);
         g_pos[g_posCount] = now;
         seen[g_posCount] = 1;
         g_posCount++;
         continue;
        }
      seen[k] = 1;
      if(report)
        {
         if(g_pos[k].type != now.type)
           {
            // A netting reversal: the old side closes whole, the new one opens.
            ReportClose(g_pos[k], g_pos[k].volume, g_pos[k].volume);
            ReportOpen(now, now.volume, PositionGetDouble(POSITION_PRICE_CURRENT), 0);
           }
         else if(now.volume < g_pos[k].volume - 1e-8)
            ReportClose(g_pos[k], g_pos[k].volume - now.volume, g_pos[k].volume);
         else if(now.volume > g_pos[k].volume + 1e-8)
            ReportOpen(now, now.volume - g_pos[k].volume, PositionGetDouble(POSITION_PRICE_CURRENT), 0);
         if(g_pos[k].type == now.type && (MathAbs(g_pos[k].sl - now.sl) > 1e-10 || MathAbs(g_pos[k].tp - now.tp) > 1e-10))
            ReportModify(now);
        }
      g_pos[k] = now;
     }
   for(int i = g_posCount - 1; i >= 0; i--)
     {
      if(seen[i] != 0)
         continue;
      if(report)
         ReportClose(g_pos[i], g_pos[i].volume, g_pos[i].volume);
      RemovePos(i);
     }
  }

void ScanOrders(const bool report)
  {
   int total = OrdersTotal();
   int seen[];
   ArrayResize(seen, g_ordCount);
   if(g_ordCount > 0)
      ArrayInitialize(seen, 0);
   for(int i = 0; i < total; i++)
     {
      ulong ticket = OrderGetTicket(i);
      if(ticket == 0)
         continue;
      long type = OrderGetInteger(ORDER_TYPE);
      if(StringLen(PendingTypeName(type)) == 0)
         continue;   // market orders in flight, stop-limits and close-by are not copied
      KnownOrder now;
      now.ticket = ticket;
      now.symbol = OrderGetString(ORDER_SYMBOL);
      now.type = type;
      now.volume = OrderGetDouble(ORDER_VOLUME_CURRENT);
      now.price = OrderGetDouble(ORDER_PRICE_OPEN);
      now.sl = OrderGetDouble(ORDER_SL);
      now.tp = OrderGetDouble(ORDER_TP);
      int k = FindOrd(ticket);
      if(k < 0)
        {
         if(report)
            ReportPending(now);
         ArrayResize(g_ord, g_ordCount + 1);
         ArrayResize(seen, g_ordCount + 1);
         g_ord[g_ordCount] = now;
         seen[g_ordCount] = 1;
         g_ordCount++;
         continue;
        }
      seen[k] = 1;
      if(report && (MathAbs(g_ord[k].price - now.price) > 1e-10 || MathAbs(g_ord[k].sl - now.sl) > 1e-10
                    || MathAbs(g_ord[k].tp - now.tp) > 1e-10))
         PrintFormat("MirrorWebhook: pending order %I64u was changed; followers keep the order as it was placed", ticket);
      g_ord[k] = now;
     }
   for(int i = g_ordCount - 1; i >= 0; i--)
     {
      if(seen[i] != 0)
         continue;
      if(report)
         ReportCancel(g_ord[i].ticket);
      RemoveOrd(i);
     }
  }

//--- positions first: a pending order that became a position is consumed there, not cancelled
void Scan(const bool report)
  {
   ScanPositions(report);
   ScanOrders(report);
  }

//+------------------------------------------------------------------+
//| Expert events                                                    |
//+------------------------------------------------------------------+
int OnInit()
  {
   if(StringLen(WebhookUrl) == 0 || StringLen(Secret) < 16)
     {
      Print("MirrorWebhook: set WebhookUrl and Secret (the webhook's secret, at least 16 characters)");
      return INIT_PARAMETERS_INCORRECT;
     }
   g_seqVar = "MirrorWebhook." + IntegerToString(AccountInfoInteger(ACCOUNT_LOGIN)) + ".seq";
   if(GlobalVariableCheck(g_seqVar))
      g_seq = (long)GlobalVariableGet(g_seqVar);
   // What is open now was opened before the EA ran: taken in without reporting.
   Scan(false);
   EventSetMillisecondTimer((int)MathMax(TimerMs, 50));
   PrintFormat("MirrorWebhook: posting %s's trades to %s", AccountInfoString(ACCOUNT_SERVER), WebhookUrl);
   return INIT_SUCCEEDED;
  }

void OnDeinit(const int reason)
  {
   EventKillTimer();
   GlobalVariablesFlush();
   if(g_queueCount > 0)
      PrintFormat("MirrorWebhook: stopping with %d events not delivered", g_queueCount);
  }

void OnTradeTransaction(const MqlTradeTransaction &trans, const MqlTradeRequest &request, const MqlTradeResult &result)
  {
   Scan(true);
  }

void OnTimer()
  {
   Scan(true);
   Flush();
  }
//+------------------------------------------------------------------+
