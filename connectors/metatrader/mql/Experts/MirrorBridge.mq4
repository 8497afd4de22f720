//+------------------------------------------------------------------+
//| MirrorBridge.mq4                                                 |
//| Mirror's Expert Advisor for MetaTrader 4 (build 1100 or later:   |
//| it uses the Socket* functions of the current MQL4 reference).    |
//|                                                                  |
//| MT4 has no OnTradeTransaction: trades are found by comparing     |
//| {ticket -> type, lots, sl, tp} with the last scan, every         |
//| TimerMs. A partial close shows as its ticket closing and a new   |
//| ticket whose comment is "from #<ticket>": it is reported as one  |
//| "out" deal of the old ticket, naming the new one.                |
//|                                                                  |
//| Functions named Send_<type>, Json_<object> and OnFrame_<type>    |
//| build and read exactly the protocol's messages: a test in Mirror |
//| checks their field names against the engine's schema.            |
//+------------------------------------------------------------------+
#property copyright   "Mirror"
#property link        "https://github.com/mirror-trading/mirror"
#property version     "1.00"
#property description "Mirror trade copier bridge. Add the bridge host to Tools > Options > Expert Advisors > allowed URLs and enable AutoTrading."
#property strict

#include <MirrorBridge\Link.mqh>
#include <MirrorBridge\Journal.mqh>

input string BridgeHost         = "127.0.0.1";  // Bridge host (also in the allowed URL list)
input int    BridgePort         = 7070;         // Bridge port
input bool   UseTls             = true;         // TLS (SocketTlsHandshake)
input string CertThumbprint     = "";           // Bridge certificate SHA-1 thumbprint (empty: not pinned)
input string Token              = "";           // This terminal's token, from the engine's configuration
input int    MagicNumber        = 7460531;      // Magic number of Mirror's orders
input int    TimerMs            = 50;           // How often the EA reads the link and scans trades, ms
input int    HeartbeatTimeoutMs = 5000;         // Silence from the bridge that ends the link, ms
input int    ReconnectMinMs     = 1000;         // First reconnect delay, ms (doubles after each failure)
input int    ReconnectMaxMs     = 30000;        // Longest reconnect delay, ms
input int    AccountEveryMs     = 500;          // Balance/equity updates at most this often, ms
input int    TradeRetries       = 10;           // Attempts when the trade context is busy (146) or on requotes
input int    RetryDelayMs       = 100;          // Wait between attempts, ms

#define EA_VERSION "1.0.0"

struct MirrorCmd
  {
   long              cmd;
   string            op;
   string            cid;
   string            symbol;
   string            side;
   string            orderType;
   string            volume;
   string            price;
   string            sl;
   string            tp;
   long              position;
   long              order;
   long              expiration;
   long              deviation;
   string            tif;
  };

//--- one ticket as last reported (market orders are positions, the others pending orders)
struct KnownTicket
  {
   int               ticket;
   string            symbol;
   int               type;
   double            lots;
   double            price;
   double            sl;
   double            tp;
   string            comment;
  };

KnownTicket g_known[];
int         g_knownCount = 0;
string      g_subs[];
double      g_subLastBid[];
double      g_subLastAsk[];
bool        g_welcomed = false;
bool        g_synced = false;
uint        g_lastDial = 0;
uint        g_backoff = 1000;
uint        g_lastAccount = 0;
string      g_sentAccount = "";
int         g_attrTicket = 0;   // the ticket a command being executed touches ...
string      g_attrCid = "";     // ... and Mirror's id for the deals it causes

//+------------------------------------------------------------------+
//| Formatting                                                       |
//+------------------------------------------------------------------+
int Digits_(const string symbol)
  {
   return (int)MarketInfo(symbol, MODE_DIGITS);
  }

int VolumeDigits(const double step)
  {
   for(int d = 0; d < 8; d++)
     {
      double scaled = step * MathPow(10.0, d);
      if(MathAbs(scaled - MathRound(scaled)) < 1e-7)
         return d;
     }
   return 8;
  }

int VolDigits(const string symbol)
  {
   return VolumeDigits(MarketInfo(symbol, MODE_LOTSTEP));
  }

bool IsMarket(const int type)
  {
   return type == OP_BUY || type == OP_SELL;
  }

string SideOf(const int type)
  {
   return (type == OP_BUY || type == OP_BUYLIMIT || type == OP_BUYSTOP) ? "buy" : "sell";
  }

string Opposite(const string side)
  {
   return side == "buy" ? "sell" : "buy";
  }

string PendingTypeName(const int type)
  {
   if(type == OP_BUYLIMIT)
      return "buy_limit";
   if(type == OP_SELLLIMIT)
      return "sell_limit";
   if(type == OP_BUYSTOP)
      return "buy_stop";
   if(type == OP_SELLSTOP)
      return "sell_stop";
   return "";
  }

string KindOf(const string symbol)
  {
   int mode = (int)MarketInfo(symbol, MODE_PROFITCALCMODE);
   if(mode == 0)
      return "forex";
   if(mode == 2)
      return "future";
   return "cfd";
  }

long NowMsc()
  {
   return (long)TimeCurrent() * 1000;
  }

//--- Mirror's id for a deal on `ticket`: the command being executed, else the comment when it is one
string CidFor(const int ticket, const string comment)
  {
   if(ticket == g_attrTicket && StringLen(g_attrCid) > 0)
      return g_attrCid;
   return IsMirrorId(comment) ? comment : "";
  }

//--- the ticket a remainder was split from ("from #12345"), 0 if none
int SplitFrom(const string comment)
  {
   if(StringFind(comment, "from #") != 0)
      return 0;
   return (int)StringToInteger(StringSubstr(comment, 6));
  }

//+------------------------------------------------------------------+
//| Frames the EA sends                                              |
//+------------------------------------------------------------------+
void Send_hello()
  {
   string j = FrameBegin("hello");
   JInt(j, "proto", MIRROR_PROTOCOL);
   JStr(j, "platform", "MT4");
   JInt(j, "build", TerminalInfoInteger(TERMINAL_BUILD));
   JStr(j, "ea_version", EA_VERSION);
   JInt(j, "login", AccountNumber());
   JStr(j, "server", AccountServer());
   JStr(j, "company", AccountCompany());
   JStr(j, "currency", AccountCurrency());
   JStr(j, "margin_mode", "hedging");
   JInt(j, "leverage", AccountLeverage());
   JStr(j, "token", Token);
   LinkSend(JClose(j));
  }

string Json_position(const int index)
  {
   string symbol = g_known[index].symbol;
   int digits = Digits_(symbol);
   long opened = 0;
   int magic = 0;
   if(OrderSelect(g_known[index].ticket, SELECT_BY_TICKET))
     {
      opened = (long)OrderOpenTime() * 1000;
      magic = OrderMagicNumber();
     }
   string o = "{";
   JInt(o, "ticket", g_known[index].ticket);
   JStr(o, "symbol", symbol);
   JStr(o, "side", SideOf(g_known[index].type));
   JDec(o, "volume", g_known[index].lots, VolDigits(symbol));
   JDec(o, "price_open", g_known[index].price, digits);
   JLevel(o, "sl", g_known[index].sl, digits);
   JLevel(o, "tp", g_known[index].tp, digits);
   JInt(o, "magic", magic);
   JStr(o, "comment", g_known[index].comment);
   JInt(o, "time_msc", opened);
   return JClose(o);
  }

string Json_order(const int index)
  {
   string symbol = g_known[index].symbol;
   int digits = Digits_(symbol);
   long expires = 0;
   int magic = 0;
   if(OrderSelect(g_known[index].ticket, SELECT_BY_TICKET))
     {
      expires = (long)OrderExpiration() * 1000;
      magic = OrderMagicNumber();
     }
   string o = "{";
   JInt(o, "ticket", g_known[index].ticket);
   JStr(o, "symbol", symbol);
   JStr(o, "order_type", PendingTypeName(g_known[index].type));
   JDec(o, "volume", g_known[index].lots, VolDigits(symbol));
   JDec(o, "price", g_known[index].price, digits);
   JLevel(o, "sl", g_known[index].sl, digits);
   JLevel(o, "tp", g_known[index].tp, digits);
   JInt(o, "magic", magic);
   JStr(o, "comment", g_known[index].comment);
   JInt(o, "expiration", expires);
   return JClose(o);
  }

string Json_symbol(const string symbol)
  {
   int digits = Digits_(symbol);
   double tick = MarketInfo(symbol, MODE_TICKSIZE);
   if(tick <= 0.0)
      tick = MarketInfo(symbol, MODE_POINT);
   int vd = VolDigits(symbol);
   string o = "{";
   JStr(o, "name", symbol);
   JStr(o, "kind", KindOf(symbol));
   JInt(o, "digits", digits);
   JDec(o, "tick_size", tick, digits);
   JDec(o, "tick_value", MarketInfo(symbol, MODE_TICKVALUE), 8);
   JDec(o, "contract_size", MarketInfo(symbol, MODE_LOTSIZE), 2);
   JDec(o, "volume_min", MarketInfo(symbol, MODE_MINLOT), vd);
   JDec(o, "volume_max", MarketInfo(symbol, MODE_MAXLOT), vd);
   JDec(o, "volume_step", MarketInfo(symbol, MODE_LOTSTEP), vd);
   return JClose(o);
  }

string Json_done(const int index)
  {
   string o = "{";
   JInt(o, "cmd", g_journal[index].cmd);
   JStr(o, "cid", g_journal[index].cid);
   JInt(o, "order", g_journal[index].order);
   JInt(o, "position", g_journal[index].position);
   JStr(o, "price", g_journal[index].price);
   JStr(o, "volume", g_journal[index].volume);
   return JClose(o);
  }

void Send_snapshot(const long sync, const bool withSymbols)
  {
   string positions = "[";
   string orders = "[";
   for(int i = 0; i < g_knownCount; i++)
     {
      if(IsMarket(g_known[i].type))
         JPush(positions, Json_position(i));
      else
         JPush(orders, Json_order(i));
     }
   positions += "]";
   orders += "]";
   string symbols = "[";
   if(withSymbols)
     {
      int total = SymbolsTotal(true);
      for(int i = 0; i < total; i++)
         JPush(symbols, Json_symbol(SymbolName(i, true)));
     }
   symbols += "]";
   string done = "[";
   int first = g_journalCount > MIRROR_JOURNAL_SENT ? g_journalCount - MIRROR_JOURNAL_SENT : 0;
   for(int i = first; i < g_journalCount; i++)
      JPush(done, Json_done(i));
   done += "]";
   string j = FrameBegin("snapshot");
   JInt(j, "sync", sync);
   JInt(j, "time_msc", NowMsc());
   JDec(j, "balance", AccountBalance(), 2);
   JDec(j, "equity", AccountEquity(), 2);
   JDec(j, "margin", AccountMargin(), 2);
   JBool(j, "trade_allowed", IsTradeAllowed());
   JRaw(j, "positions", positions);
   JRaw(j, "orders", orders);
   JRaw(j, "symbols", symbols);
   JRaw(j, "done", done);
   LinkSend(JClose(j));
  }

//--- one execution; MT4 has no deal tickets (0) and names the order by its ticket
void Send_deal(const int position, const int newTicket, const string symbol, const string side, const string entry,
               const double volume, const double price, const double profit, const double sl, const double tp,
               const double posPrice, const string cid, const string reason, const long timeMsc)
  {
   int digits = Digits_(symbol);
   string j = FrameBegin("deal");
   JInt(j, "position", position);
   JInt(j, "new_ticket", newTicket);
   JInt(j, "order", position);
   JInt(j, "deal", 0);
   JStr(j, "symbol", symbol);
   JStr(j, "side", side);
   JStr(j, "entry", entry);
   JDec(j, "volume", volume, VolDigits(symbol));
   JDec(j, "price", price, digits);
   JDec(j, "profit", profit, 2);
   JLevel(j, "sl", sl, digits);
   JLevel(j, "tp", tp, digits);
   JLevel(j, "pos_price", posPrice, digits);
   JStr(j, "cid", cid);
   JStr(j, "reason", reason);
   JInt(j, "time_msc", timeMsc);
   LinkSend(JClose(j));
  }

void Send_sltp(const int ticket, const string symbol, const double sl, const double tp)
  {
   int digits = Digits_(symbol);
   string j = FrameBegin("sltp");
   JInt(j, "position", ticket);
   JStr(j, "symbol", symbol);
   JLevel(j, "sl", sl, digits);
   JLevel(j, "tp", tp, digits);
   JInt(j, "time_msc", NowMsc());
   LinkSend(JClose(j));
  }

void Send_pending_add(const KnownTicket &k, const long expiration)
  {
   int digits = Digits_(k.symbol);
   string j = FrameBegin("pending_add");
   JInt(j, "ticket", k.ticket);
   JStr(j, "symbol", k.symbol);
   JStr(j, "order_type", PendingTypeName(k.type));
   JDec(j, "volume", k.lots, VolDigits(k.symbol));
   JDec(j, "price", k.price, digits);
   JLevel(j, "sl", k.sl, digits);
   JLevel(j, "tp", k.tp, digits);
   JStr(j, "cid", CidFor(k.ticket, k.comment));
   JInt(j, "expiration", expiration);
   JInt(j, "time_msc", NowMsc());
   LinkSend(JClose(j));
  }

void Send_pending_del(const int ticket, const string state, const string cid)
  {
   string j = FrameBegin("pending_del");
   JInt(j, "ticket", ticket);
   JStr(j, "state", state);
   JStr(j, "cid", cid);
   JInt(j, "time_msc", NowMsc());
   LinkSend(JClose(j));
  }

void Send_account(const string balance, const string equity, const string margin)
  {
   string j = FrameBegin("account");
   JStr(j, "balance", balance);
   JStr(j, "equity", equity);
   JStr(j, "margin", margin);
   LinkSend(JClose(j));
  }

void Send_quote(const string symbol, const double bid, const double ask, const long timeMsc)
  {
   int digits = Digits_(symbol);
   string j = FrameBegin("quote");
   JStr(j, "symbol", symbol);
   JDec(j, "bid", bid, digits);
   JDec(j, "ask", ask, digits);
   JInt(j, "time_msc", timeMsc);
   LinkSend(JClose(j));
  }

void Send_ack(const long cmd, const bool ok, const long retcode, const string message, const long order,
              const long position, const string price, const string volume, const bool dup)
  {
   string j = FrameBegin("ack");
   JInt(j, "cmd", cmd);
   JBool(j, "ok", ok);
   JInt(j, "retcode", retcode);
   JStr(j, "message", message);
   JInt(j, "order", order);
   JInt(j, "position", position);
   JStr(j, "price", price);
   JStr(j, "volume", volume);
   JBool(j, "dup", dup);
   LinkSend(JClose(j));
  }

void Send_pong(const long t)
  {
   string j = FrameBegin("pong");
   JInt(j, "t", t);
   JBool(j, "connected", IsConnected());
   JBool(j, "trade_allowed", IsTradeAllowed());
   LinkSend(JClose(j));
  }

//+------------------------------------------------------------------+
//| Detecting trades by comparing tickets with the last scan         |
//+------------------------------------------------------------------+
int FindKnown(const int ticket)
  {
   for(int i = 0; i < g_knownCount; i++)
      if(g_known[i].ticket == ticket)
         return i;
   return -1;
  }

void RemoveKnown(const int index)
  {
   for(int i = index + 1; i < g_knownCount; i++)
      g_known[i - 1] = g_known[i];
   g_knownCount--;
   ArrayResize(g_known, g_knownCount);
  }

void AddKnown(const KnownTicket &k)
  {
   ArrayResize(g_known, g_knownCount + 1);
   g_known[g_knownCount] = k;
   g_knownCount++;
  }

void Scan(const bool report)
  {
   KnownTicket current[];
   int count = 0;
   int total = OrdersTotal();
   for(int i = 0; i < total; i++)
     {
      if(!OrderSelect(i, SELECT_BY_POS, MODE_TRADES))
         continue;
      ArrayResize(current, count + 1);
      current[count].ticket = OrderTicket();
      current[count].symbol = OrderSymbol();
      current[count].type = OrderType();
      current[count].lots = OrderLots();
      current[count].price = OrderOpenPrice();
      current[count].sl = OrderStopLoss();
      current[count].tp = OrderTakeProfit();
      current[count].comment = OrderComment();
      count++;
     }
   if(!report)
     {
      ArrayResize(g_known, count);
      for(int i = 0; i < count; i++)
         g_known[i] = current[i];
      g_knownCount = count;
      return;
     }
   int handled[];   // 1 once a current ticket is accounted for
   ArrayResize(handled, count);
   if(count > 0)
      ArrayInitialize(handled, 0);

   // 1. Partial closes: a new market ticket split from a known one that is gone.
   for(int i = 0; i < count; i++)
     {
      int old = SplitFrom(current[i].comment);
      int k = old > 0 ? FindKnown(old) : -1;
      if(k < 0 || FindKnown(current[i].ticket) >= 0 || !IsMarket(current[i].type) || !IsMarket(g_known[k].type))
         continue;
      double closed = g_known[k].lots - current[i].lots;
      double price = 0.0, profit = 0.0;
      long closedAt = NowMsc();
      if(OrderSelect(old, SELECT_BY_TICKET))
        {
         price = OrderClosePrice();
         profit = OrderProfit() + OrderSwap() + OrderCommission();
         closedAt = (long)OrderCloseTime() * 1000;
        }
      Send_deal(old, current[i].ticket, g_known[k].symbol, Opposite(SideOf(g_known[k].type)), "out", closed, price, profit,
                current[i].sl, current[i].tp, 0.0, CidFor(old, ""), "client", closedAt);
      RemoveKnown(k);
      AddKnown(current[i]);
      handled[i] = 1;
     }

   // 2. Tickets still there: a pending order that triggered, or stops that moved.
   for(int i = 0; i < count; i++)
     {
      if(handled[i] != 0)
         continue;
      int k = FindKnown(current[i].ticket);
      if(k < 0)
         continue;
      handled[i] = 1;
      if(!IsMarket(g_known[k].type) && IsMarket(current[i].type))
        {
         long openedAt = OrderSelect(current[i].ticket, SELECT_BY_TICKET) ? (long)OrderOpenTime() * 1000 : NowMsc();
         Send_deal(current[i].ticket, 0, current[i].symbol, SideOf(current[i].type), "in", current[i].lots, current[i].price,
                   0.0, current[i].sl, current[i].tp, current[i].price, CidFor(current[i].ticket, current[i].comment),
                   "pending", openedAt);
        }
      else if(IsMarket(current[i].type)
              && (MathAbs(g_known[k].sl - current[i].sl) > 1e-10 || MathAbs(g_known[k].tp - current[i].tp) > 1e-10))
         Send_sltp(current[i].ticket, current[i].symbol, current[i].sl, current[i].tp);
      g_known[k] = current[i];
     }

   // 3. Known tickets gone: closed positions and deleted pending orders.
   for(int k = g_knownCount - 1; k >= 0; k--)
     {
      bool present = false;
      for(int i = 0; i < count && !present; i++)
         present = current[i].ticket == g_known[k].ticket;
      if(present)
         continue;
      int ticket = g_known[k].ticket;
      bool inHistory = OrderSelect(ticket, SELECT_BY_TICKET);
      if(IsMarket(g_known[k].type))
        {
         double price = inHistory ? OrderClosePrice() : 0.0;
         double profit = inHistory ? OrderProfit() + OrderSwap() + OrderCommission() : 0.0;
         long closedAt = inHistory ? (long)OrderCloseTime() * 1000 : NowMsc();
         string comment = inHistory ? OrderComment() : "";
         string reason = StringFind(comment, "[sl]") >= 0 ? "sl" : (StringFind(comment, "[tp]") >= 0 ? "tp" : "client");
         Send_deal(ticket, 0, g_known[k].symbol, Opposite(SideOf(g_known[k].type)), "out", g_known[k].lots, price, profit,
                   0.0, 0.0, 0.0, CidFor(ticket, ""), reason, closedAt);
        }
      else
        {
         string comment = inHistory ? OrderComment() : "";
         string state = StringFind(comment, "expir") >= 0 ? "expired" : "cancelled";
         Send_pending_del(ticket, state, CidFor(ticket, g_known[k].comment));
        }
      RemoveKnown(k);
     }

   // 4. New tickets: positions opened, pending orders placed.
   for(int i = 0; i < count; i++)
     {
      if(handled[i] != 0)
         continue;
      if(IsMarket(current[i].type))
        {
         long openedAt = OrderSelect(current[i].ticket, SELECT_BY_TICKET) ? (long)OrderOpenTime() * 1000 : NowMsc();
         Send_deal(current[i].ticket, 0, current[i].symbol, SideOf(current[i].type), "in", current[i].lots, current[i].price,
                   0.0, current[i].sl, current[i].tp, current[i].price, CidFor(current[i].ticket, current[i].comment),
                   "client", openedAt);
        }
      else
        {
         long expires = OrderSelect(current[i].ticket, SELECT_BY_TICKET) ? (long)OrderExpiration() * 1000 : 0;
         Send_pending_add(current[i], expires);
        }
      AddKnown(current[i]);
     }
  }

//+------------------------------------------------------------------+
//| Commands                                                         |
//+------------------------------------------------------------------+
bool VolumeOk(const string symbol, const double volume)
  {
   double min = MarketInfo(symbol, MODE_MINLOT);
   double max = MarketInfo(symbol, MODE_MAXLOT);
   double step = MarketInfo(symbol, MODE_LOTSTEP);
   if(volume <= 0.0 || volume < min - 1e-10 || volume > max + 1e-10 || step <= 0.0)
      return false;
   double steps = volume / step;
   return MathAbs(steps - MathRound(steps)) < 1e-6;
  }

double Level(const string text, const int digits)
  {
   if(StringLen(text) == 0)
      return 0.0;
   return NormalizeDouble(StringToDouble(text), digits);
  }

//--- waits for the terminal's single trade context (error 146 otherwise)
bool WaitTradeContext()
  {
   for(int i = 0; i < TradeRetries; i++)
     {
      if(!IsTradeContextBusy())
         return true;
      Sleep(RetryDelayMs);
     }
   return !IsTradeContextBusy();
  }

//--- errors after which the same request, with a fresh price, may go through
bool Retryable(const int error)
  {
   return error == ERR_TRADE_CONTEXT_BUSY || error == ERR_REQUOTE || error == ERR_PRICE_CHANGED || error == ERR_OFF_QUOTES
          || error == ERR_SERVER_BUSY || error == ERR_BROKER_BUSY;
  }

//--- an open or past order carrying Mirror's id (when the journal lost it)
bool FindById(const string cid, long &order, long &position, string &price, string &volume)
  {
   for(int i = OrdersTotal() - 1; i >= 0; i--)
     {
      if(!OrderSelect(i, SELECT_BY_POS, MODE_TRADES) || OrderComment() != cid || OrderMagicNumber() != MagicNumber)
         continue;
      bool market = IsMarket(OrderType());
      order = OrderTicket();
      position = market ? OrderTicket() : 0;
      price = market ? DoubleToString(OrderOpenPrice(), Digits_(OrderSymbol())) : "";
      volume = market ? DoubleToString(OrderLots(), VolDigits(OrderSymbol())) : "";
      return true;
     }
   for(int i = OrdersHistoryTotal() - 1; i >= 0; i--)
     {
      if(!OrderSelect(i, SELECT_BY_POS, MODE_HISTORY) || OrderComment() != cid || OrderMagicNumber() != MagicNumber)
         continue;
      if(!IsMarket(OrderType()))
         continue;
      order = OrderTicket();
      position = OrderTicket();
      price = DoubleToString(OrderOpenPrice(), Digits_(OrderSymbol()));
      volume = DoubleToString(OrderLots(), VolDigits(OrderSymbol()));
      return true;
     }
   return false;
  }

void Executed(const MirrorCmd &c, const string message, const long order, const long position, const string price,
              const string volume)
  {
   JournalAdd(c.cmd, c.cid, order, position, price, volume);
   Send_ack(c.cmd, true, 0, message, order, position, price, volume, false);
  }

void Refused(const MirrorCmd &c, const long error, const string message)
  {
   Send_ack(c.cmd, false, error, message, 0, 0, "", "", false);
  }

void DoOpen(const MirrorCmd &c)
  {
   if(!SymbolSelect(c.symbol, true))
     {
      Refused(c, ERR_UNKNOWN_SYMBOL, "unknown symbol " + c.symbol);
      return;
     }
   int digits = Digits_(c.symbol);
   double volume = StringToDouble(c.volume);
   if(!VolumeOk(c.symbol, volume))
     {
      Refused(c, ERR_INVALID_TRADE_VOLUME, "volume " + c.volume + " is off the symbol's step, minimum or maximum");
      return;
     }
   bool buy = c.side == "buy";
   bool market = c.orderType == "market";
   int command = buy ? OP_BUY : OP_SELL;
   if(c.orderType == "limit")
      command = buy ? OP_BUYLIMIT : OP_SELLLIMIT;
   else if(c.orderType == "stop")
      command = buy ? OP_BUYSTOP : OP_SELLSTOP;
   datetime expiration = (!market && c.tif == "gtd" && c.expiration > 0) ? (datetime)(c.expiration / 1000) : 0;
   int ticket = -1;
   int error = 0;
   for(int attempt = 0; attempt < TradeRetries; attempt++)
     {
      if(!WaitTradeContext())
        {
         error = ERR_TRADE_CONTEXT_BUSY;
         continue;
        }
      RefreshRates();
      double price = market ? MarketInfo(c.symbol, buy ? MODE_ASK : MODE_BID) : Level(c.price, digits);
      ResetLastError();
      ticket = OrderSend(c.symbol, command, volume, NormalizeDouble(price, digits), (int)c.deviation, Level(c.sl, digits),
                         Level(c.tp, digits), c.cid, MagicNumber, expiration, clrNONE);
      if(ticket > 0)
         break;
      error = GetLastError();
      if(!Retryable(error))
         break;
      Sleep(RetryDelayMs);
     }
   if(ticket <= 0 && error == ERR_TRADE_TIMEOUT)
     {
      // The outcome is unknown to the terminal too: look for the order before saying no.
      long order = 0, position = 0;
      string found = "", lots = "";
      if(FindById(c.cid, order, position, found, lots))
        {
         Executed(c, "found after a timeout", order, position, found, lots);
         return;
        }
     }
   if(ticket <= 0)
     {
      Refused(c, error, "OrderSend failed, error " + IntegerToString(error));
      return;
     }
   string price = "", lots = "";
   if(market && OrderSelect(ticket, SELECT_BY_TICKET))
     {
      price = DoubleToString(OrderOpenPrice(), digits);
      lots = DoubleToString(OrderLots(), VolDigits(c.symbol));
     }
   Executed(c, "done", ticket, market ? ticket : 0, price, lots);
  }

void DoClose(const MirrorCmd &c)
  {
   int ticket = (int)c.position;
   if(!OrderSelect(ticket, SELECT_BY_TICKET) || OrderCloseTime() != 0 || !IsMarket(OrderType()))
     {
      Refused(c, ERR_INVALID_TICKET, "no open position " + IntegerToString(ticket));
      return;
     }
   string symbol = OrderSymbol();
   int type = OrderType();
   double open = OrderLots();
   double volume = StringToDouble(c.volume);
   bool whole = MathAbs(volume - open) < 1e-8;
   if(volume <= 0.0 || volume > open + 1e-8 || (!whole && !VolumeOk(symbol, volume)))
     {
      Refused(c, ERR_INVALID_TRADE_VOLUME, "cannot close " + c.volume + " of " + DoubleToString(open, VolDigits(symbol)));
      return;
     }
   if(whole)
      volume = open;
   bool closed = false;
   int error = 0;
   for(int attempt = 0; attempt < TradeRetries && !closed; attempt++)
     {
      if(!WaitTradeContext())
        {
         error = ERR_TRADE_CONTEXT_BUSY;
         continue;
        }
      RefreshRates();
      double price = MarketInfo(symbol, type == OP_BUY ? MODE_BID : MODE_ASK);
      ResetLastError();
      closed = OrderClose(ticket, volume, NormalizeDouble(price, Digits_(symbol)), (int)c.deviation, clrNONE);
      if(closed)
         break;
      error = GetLastError();
      if(!Retryable(error))
         break;
      Sleep(RetryDelayMs);
     }
   if(!closed)
     {
      Refused(c, error, "OrderClose failed, error " + IntegerToString(error));
      return;
     }
   string price = "";
   if(OrderSelect(ticket, SELECT_BY_TICKET))
      price = DoubleToString(OrderClosePrice(), Digits_(symbol));
   Executed(c, "done", ticket, ticket, price, DoubleToString(volume, VolDigits(symbol)));
  }

void DoModify(const MirrorCmd &c)
  {
   int ticket = (int)c.position;
   if(!OrderSelect(ticket, SELECT_BY_TICKET) || OrderCloseTime() != 0 || !IsMarket(OrderType()))
     {
      Refused(c, ERR_INVALID_TICKET, "no open position " + IntegerToString(ticket));
      return;
     }
   int digits = Digits_(OrderSymbol());
   double openPrice = OrderOpenPrice();
   bool modified = false;
   int error = 0;
   for(int attempt = 0; attempt < TradeRetries && !modified; attempt++)
     {
      if(!WaitTradeContext())
        {
         error = ERR_TRADE_CONTEXT_BUSY;
         continue;
        }
      ResetLastError();
      modified = OrderModify(ticket, openPrice, Level(c.sl, digits), Level(c.tp, digits), 0, clrNONE);
      if(modified)
         break;
      error = GetLastError();
      if(error == ERR_NO_RESULT)
        {
         modified = true;   // the same levels: nothing to change
         break;
        }
      if(!Retryable(error))
         break;
      Sleep(RetryDelayMs);
     }
   if(modified)
      Send_ack(c.cmd, true, 0, "done", 0, ticket, "", "", false);
   else
      Refused(c, error, "OrderModify failed, error " + IntegerToString(error));
  }

void DoCancel(const MirrorCmd &c)
  {
   int ticket = (int)c.order;
   bool found = ticket > 0 && OrderSelect(ticket, SELECT_BY_TICKET) && OrderCloseTime() == 0 && !IsMarket(OrderType());
   if(!found)
     {
      ticket = 0;
      for(int i = OrdersTotal() - 1; i >= 0 && ticket == 0; i--)
         if(OrderSelect(i, SELECT_BY_POS, MODE_TRADES) && !IsMarket(OrderType()) && StringLen(c.cid) > 0
            && OrderComment() == c.cid)
            ticket = OrderTicket();
     }
   if(ticket == 0)
     {
      Refused(c, ERR_INVALID_TICKET, "no pending order " + c.cid);
      return;
     }
   bool deleted = false;
   int error = 0;
   for(int attempt = 0; attempt < TradeRetries && !deleted; attempt++)
     {
      if(!WaitTradeContext())
        {
         error = ERR_TRADE_CONTEXT_BUSY;
         continue;
        }
      ResetLastError();
      deleted = OrderDelete(ticket, clrNONE);
      if(deleted)
         break;
      error = GetLastError();
      if(!Retryable(error))
         break;
      Sleep(RetryDelayMs);
     }
   if(deleted)
      Send_ack(c.cmd, true, 0, "done", ticket, 0, "", "", false);
   else
      Refused(c, error, "OrderDelete failed, error " + IntegerToString(error));
  }

void Execute(const MirrorCmd &c)
  {
   bool trade = c.op == "open" || c.op == "close";
   // Executed before (an ack lost with the connection, or the engine resending)? Answer from
   // the journal, or from the terminal itself if the journal lost it, and do nothing.
   int j = JournalFind(c.cmd, trade ? c.cid : "");
   if(j >= 0)
     {
      Send_ack(c.cmd, true, 0, "already executed", g_journal[j].order, g_journal[j].position, g_journal[j].price,
               g_journal[j].volume, true);
      return;
     }
   g_attrTicket = (int)(c.op == "cancel" ? c.order : c.position);
   g_attrCid = c.cid;
   if(c.op == "open")
     {
      long order = 0, position = 0;
      string price = "", volume = "";
      if(StringLen(c.cid) > 0 && FindById(c.cid, order, position, price, volume))
        {
         JournalAdd(c.cmd, c.cid, order, position, price, volume);
         Send_ack(c.cmd, true, 0, "already executed", order, position, price, volume, true);
         g_attrTicket = 0;
         g_attrCid = "";
         return;
        }
      DoOpen(c);
     }
   else if(c.op == "close")
      DoClose(c);
   else if(c.op == "modify")
      DoModify(c);
   else if(c.op == "cancel")
      DoCancel(c);
   else
      Refused(c, -1, "unknown op " + c.op);
   // The deals it caused follow the ack, named with Mirror's id.
   Scan(true);
   g_attrTicket = 0;
   g_attrCid = "";
  }

//+------------------------------------------------------------------+
//| Frames the EA reads                                              |
//+------------------------------------------------------------------+
void OnFrame_welcome(const string frame)
  {
   long proto = JGetLong(frame, "proto");
   long session = JGetLong(frame, "session");
   long heartbeat = JGetLong(frame, "heartbeat_ms");
   if(proto != MIRROR_PROTOCOL)
     {
      LinkClose("the bridge speaks protocol " + IntegerToString(proto));
      return;
     }
   PrintFormat("Mirror: connected to %s:%d, session %I64d, heartbeat %I64d ms", BridgeHost, BridgePort, session, heartbeat);
   g_welcomed = true;
   g_backoff = (uint)ReconnectMinMs;
   // The snapshot tells the bridge everything held now; events follow from here.
   Scan(false);
   Send_snapshot(0, true);
   g_synced = true;
  }

void OnFrame_error(const string frame)
  {
   string code = JGetStr(frame, "code");
   string message = JGetStr(frame, "message");
   Print("Mirror: the bridge refused the session (", code, "): ", message);
   LinkClose("refused: " + code);
  }

void OnFrame_cmd(const string frame)
  {
   MirrorCmd c;
   c.cmd = JGetLong(frame, "cmd");
   c.op = JGetStr(frame, "op");
   c.cid = JGetStr(frame, "cid");
   c.symbol = JGetStr(frame, "symbol");
   c.side = JGetStr(frame, "side");
   c.orderType = JGetStr(frame, "order_type");
   c.volume = JGetStr(frame, "volume");
   c.price = JGetStr(frame, "price");
   c.sl = JGetStr(frame, "sl");
   c.tp = JGetStr(frame, "tp");
   c.position = JGetLong(frame, "position");
   c.order = JGetLong(frame, "order");
   c.expiration = JGetLong(frame, "expiration");
   c.deviation = JGetLong(frame, "deviation");
   c.tif = JGetStr(frame, "tif");
   Execute(c);
  }

void OnFrame_ping(const string frame)
  {
   Send_pong(JGetLong(frame, "t"));
  }

void OnFrame_subscribe(const string frame)
  {
   int count = JGetArr(frame, "symbols", g_subs);
   ArrayResize(g_subLastBid, count);
   ArrayResize(g_subLastAsk, count);
   for(int i = 0; i < count; i++)
     {
      SymbolSelect(g_subs[i], true);
      g_subLastBid[i] = 0.0;   // a quote for each at once
      g_subLastAsk[i] = 0.0;
     }
  }

void OnFrame_sync(const string frame)
  {
   long id = JGetLong(frame, "id");
   bool symbols = JGetBool(frame, "symbols");
   Scan(true);
   Send_snapshot(id, symbols);
  }

void Dispatch(const string frame)
  {
   string type = JGetStr(frame, "type");
   if(type == "welcome")
      OnFrame_welcome(frame);
   else if(type == "error")
      OnFrame_error(frame);
   else if(!g_welcomed)
      LinkClose("a " + type + " frame before welcome");
   else if(type == "cmd")
      OnFrame_cmd(frame);
   else if(type == "ping")
      OnFrame_ping(frame);
   else if(type == "subscribe")
      OnFrame_subscribe(frame);
   else if(type == "sync")
      OnFrame_sync(frame);
   else
      Print("Mirror: ignoring a frame of unknown type ", type);
  }

//+------------------------------------------------------------------+
//| Periodic work                                                    |
//+------------------------------------------------------------------+
void SendAccountIfChanged()
  {
   if(GetTickCount() - g_lastAccount < (uint)AccountEveryMs)
      return;
   g_lastAccount = GetTickCount();
   string balance = DoubleToString(AccountBalance(), 2);
   string equity = DoubleToString(AccountEquity(), 2);
   string margin = DoubleToString(AccountMargin(), 2);
   string now = balance + "/" + equity + "/" + margin;
   if(now == g_sentAccount)
      return;
   g_sentAccount = now;
   Send_account(balance, equity, margin);
  }

void SendQuotes()
  {
   int count = ArraySize(g_subs);
   for(int i = 0; i < count; i++)
     {
      double bid = MarketInfo(g_subs[i], MODE_BID);
      double ask = MarketInfo(g_subs[i], MODE_ASK);
      if(bid <= 0.0 || (bid == g_subLastBid[i] && ask == g_subLastAsk[i]))
         continue;
      g_subLastBid[i] = bid;
      g_subLastAsk[i] = ask;
      Send_quote(g_subs[i], bid, ask, (long)MarketInfo(g_subs[i], MODE_TIME) * 1000);
     }
  }

void Dial()
  {
   g_lastDial = GetTickCount();
   g_welcomed = false;
   g_synced = false;
   if(LinkDial(BridgeHost, BridgePort, UseTls, CertThumbprint, 3000))
     {
      Send_hello();
      return;
     }
   g_backoff = (uint)MathMin((double)g_backoff * 2.0, (double)ReconnectMaxMs);
  }

int OnInit()
  {
   if(StringLen(Token) < 16)
     {
      Alert("Mirror: set the Token input to this terminal's token from the engine's configuration");
      return INIT_PARAMETERS_INCORRECT;
     }
   JournalLoad(AccountNumber());
   g_backoff = (uint)ReconnectMinMs;
   g_lastDial = GetTickCount() - g_backoff;
   if(!EventSetMillisecondTimer(TimerMs))
      return INIT_FAILED;
   return INIT_SUCCEEDED;
  }

void OnDeinit(const int reason)
  {
   EventKillTimer();
   LinkClose("EA stopped");
  }

void OnTimer()
  {
   if(!LinkIsOpen())
     {
      g_welcomed = false;
      g_synced = false;
      if(GetTickCount() - g_lastDial >= g_backoff)
         Dial();
      return;
     }
   string frame;
   for(int handled = 0; handled < 64 && LinkRead(frame); handled++)
      Dispatch(frame);
   if(!LinkIsOpen())
      return;
   if(LinkSilenceMs() > (uint)HeartbeatTimeoutMs)
     {
      LinkClose(g_welcomed ? "the bridge is silent" : "no welcome from the bridge");
      return;
     }
   if(g_synced)
     {
      Scan(true);
      SendAccountIfChanged();
      SendQuotes();
     }
  }

void OnTick()
  {
   // Trades are found by the timer's scan; a tick only makes it sooner.
   if(g_synced && LinkIsOpen())
      Scan(true);
  }
//+------------------------------------------------------------------+
