//+------------------------------------------------------------------+
//| MirrorBridge.mq5                                                 |
//| Mirror's Expert Advisor for MetaTrader 5.                        |
//|                                                                  |
//| Connects this terminal to the Mirror engine (the EA dials out:   |
//| a terminal cannot listen), reports the account's trading as it   |
//| happens (leader) and executes the engine's commands (follower).  |
//| One EA per terminal, on any one chart.                           |
//|                                                                  |
//| Wire format: see connectors/metatrader/src/protocol in Mirror.   |
//| Functions named Send_<type>, Json_<object> and OnFrame_<type>    |
//| build and read exactly the protocol's messages: a test in Mirror |
//| checks their field names against the engine's schema.            |
//+------------------------------------------------------------------+
#property copyright   "Mirror"
#property link        "https://github.com/mirror-trading/mirror"
#property version     "1.00"
#property description "Mirror trade copier bridge. Add the bridge host to Tools > Options > Expert Advisors > allowed URLs and enable Algo Trading."

#include <MirrorBridge\Link.mqh>
#include <MirrorBridge\Journal.mqh>

input string BridgeHost         = "127.0.0.1";  // Bridge host (also in the allowed URL list)
input int    BridgePort         = 7070;         // Bridge port
input bool   UseTls             = true;         // TLS (SocketTlsHandshake)
input string CertThumbprint     = "";           // Bridge certificate SHA-1 thumbprint (empty: not pinned)
input string Token              = "";           // This terminal's token, from the engine's configuration
input ulong  MagicNumber        = 7460531;      // Magic number of Mirror's orders
input int    TimerMs            = 20;           // How often the EA reads the link and scans trades, ms
input int    HeartbeatTimeoutMs = 5000;         // Silence from the bridge that ends the link, ms
input int    ReconnectMinMs     = 1000;         // First reconnect delay, ms (doubles after each failure)
input int    ReconnectMaxMs     = 30000;        // Longest reconnect delay, ms
input int    AccountEveryMs     = 500;          // Balance/equity updates at most this often, ms
input int    HistoryDays        = 30;           // Days of history searched for an order carrying Mirror's id

#define EA_VERSION "1.0.0"

//--- a command from the bridge
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
   ulong             lastDeal;
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

//--- one deal found in the history, before it is reported
struct FoundDeal
  {
   ulong             deal;
   ulong             order;
   long              type;
   long              entry;
   double            volume;
   double            price;
   double            profit;
   long              timeMsc;
   long              reason;
   string            comment;
  };

//--- order tickets of Mirror's recent commands, to name the deals they cause
struct OrderCid
  {
   ulong             order;
   string            cid;
  };

KnownPosition g_pos[];
int           g_posCount = 0;
KnownOrder    g_ord[];
int           g_ordCount = 0;
OrderCid      g_orderCids[];
int           g_orderCidCount = 0;
string        g_subs[];
long          g_subLastMsc[];
bool          g_welcomed = false;
bool          g_synced = false;
uint          g_lastDial = 0;
uint          g_backoff = 1000;
uint          g_lastAccount = 0;
string        g_sentAccount = "";

//+------------------------------------------------------------------+
//| Formatting                                                       |
//+------------------------------------------------------------------+
int Digits_(const string symbol)
  {
   return (int)SymbolInfoInteger(symbol, SYMBOL_DIGITS);
  }

//--- decimals of a volume step (0.01 -> 2)
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
   return VolumeDigits(SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP));
  }

string SideOf(const long positionOrDealType)
  {
   return positionOrDealType == 0 ? "buy" : "sell";   // POSITION_TYPE_BUY = DEAL_TYPE_BUY = 0
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

string ReasonName(const long reason)
  {
   switch((int)reason)
     {
      case DEAL_REASON_CLIENT:
         return "client";
      case DEAL_REASON_MOBILE:
         return "mobile";
      case DEAL_REASON_WEB:
         return "web";
      case DEAL_REASON_EXPERT:
         return "expert";
      case DEAL_REASON_SL:
         return "sl";
      case DEAL_REASON_TP:
         return "tp";
      case DEAL_REASON_SO:
         return "so";
     }
   return "other";
  }

string KindOf(const string symbol)
  {
   long mode = SymbolInfoInteger(symbol, SYMBOL_TRADE_CALC_MODE);
   if(mode == SYMBOL_CALC_MODE_FOREX || mode == SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE)
      return "forex";
   if(mode == SYMBOL_CALC_MODE_FUTURES || mode == SYMBOL_CALC_MODE_EXCH_FUTURES || mode == SYMBOL_CALC_MODE_EXCH_FUTURES_FORTS)
      return "future";
   if(mode == SYMBOL_CALC_MODE_EXCH_STOCKS || mode == SYMBOL_CALC_MODE_EXCH_STOCKS_MOEX)
      return "stock";
   return "cfd";
  }

long NowMsc()
  {
   return (long)TimeCurrent() * 1000;
  }

void RememberOrderCid(const ulong order, const string cid)
  {
   if(order == 0 || StringLen(cid) == 0)
      return;
   if(g_orderCidCount >= 256)
     {
      for(int i = 1; i < g_orderCidCount; i++)
         g_orderCids[i - 1] = g_orderCids[i];
      g_orderCidCount--;
     }
   ArrayResize(g_orderCids, g_orderCidCount + 1);
   g_orderCids[g_orderCidCount].order = order;
   g_orderCids[g_orderCidCount].cid = cid;
   g_orderCidCount++;
  }

//--- Mirror's id behind a deal: its order if Mirror sent it, else the deal's comment when it is one
string CidOf(const ulong order, const string comment)
  {
   for(int i = g_orderCidCount - 1; i >= 0; i--)
      if(g_orderCids[i].order == order)
         return g_orderCids[i].cid;
   return IsMirrorId(comment) ? comment : "";
  }

//+------------------------------------------------------------------+
//| Frames the EA sends                                              |
//+------------------------------------------------------------------+
void Send_hello()
  {
   long mode = AccountInfoInteger(ACCOUNT_MARGIN_MODE);
   string j = FrameBegin("hello");
   JInt(j, "proto", MIRROR_PROTOCOL);
   JStr(j, "platform", "MT5");
   JInt(j, "build", TerminalInfoInteger(TERMINAL_BUILD));
   JStr(j, "ea_version", EA_VERSION);
   JInt(j, "login", AccountInfoInteger(ACCOUNT_LOGIN));
   JStr(j, "server", AccountInfoString(ACCOUNT_SERVER));
   JStr(j, "company", AccountInfoString(ACCOUNT_COMPANY));
   JStr(j, "currency", AccountInfoString(ACCOUNT_CURRENCY));
   JStr(j, "margin_mode", mode == ACCOUNT_MARGIN_MODE_RETAIL_HEDGING ? "hedging" : "netting");
   JInt(j, "leverage", AccountInfoInteger(ACCOUNT_LEVERAGE));
   JStr(j, "token", Token);
   LinkSend(JClose(j));
  }

string Json_position(const int index)
  {
   string symbol = g_pos[index].symbol;
   int digits = Digits_(symbol);
   string o = "{";
   if(!PositionSelectByTicket(g_pos[index].ticket))
      return "";
   JInt(o, "ticket", (long)g_pos[index].ticket);
   JStr(o, "symbol", symbol);
   JStr(o, "side", SideOf(PositionGetInteger(POSITION_TYPE)));
   JDec(o, "volume", PositionGetDouble(POSITION_VOLUME), VolDigits(symbol));
   JDec(o, "price_open", PositionGetDouble(POSITION_PRICE_OPEN), digits);
   JLevel(o, "sl", PositionGetDouble(POSITION_SL), digits);
   JLevel(o, "tp", PositionGetDouble(POSITION_TP), digits);
   JInt(o, "magic", PositionGetInteger(POSITION_MAGIC));
   JStr(o, "comment", PositionGetString(POSITION_COMMENT));
   JInt(o, "time_msc", PositionGetInteger(POSITION_TIME_MSC));
   return JClose(o);
  }

string Json_order(const int index)
  {
   if(!OrderSelect(g_ord[index].ticket))
      return "";
   string symbol = g_ord[index].symbol;
   int digits = Digits_(symbol);
   string o = "{";
   JInt(o, "ticket", (long)g_ord[index].ticket);
   JStr(o, "symbol", symbol);
   JStr(o, "order_type", PendingTypeName(OrderGetInteger(ORDER_TYPE)));
   JDec(o, "volume", OrderGetDouble(ORDER_VOLUME_CURRENT), VolDigits(symbol));
   JDec(o, "price", OrderGetDouble(ORDER_PRICE_OPEN), digits);
   JLevel(o, "sl", OrderGetDouble(ORDER_SL), digits);
   JLevel(o, "tp", OrderGetDouble(ORDER_TP), digits);
   JInt(o, "magic", OrderGetInteger(ORDER_MAGIC));
   JStr(o, "comment", OrderGetString(ORDER_COMMENT));
   JInt(o, "expiration", OrderGetInteger(ORDER_TIME_EXPIRATION) * 1000);
   return JClose(o);
  }

string Json_symbol(const string symbol)
  {
   int digits = Digits_(symbol);
   double tick = SymbolInfoDouble(symbol, SYMBOL_TRADE_TICK_SIZE);
   if(tick <= 0.0)
      tick = SymbolInfoDouble(symbol, SYMBOL_POINT);
   int vd = VolDigits(symbol);
   string o = "{";
   JStr(o, "name", symbol);
   JStr(o, "kind", KindOf(symbol));
   JInt(o, "digits", digits);
   JDec(o, "tick_size", tick, digits);
   JDec(o, "tick_value", SymbolInfoDouble(symbol, SYMBOL_TRADE_TICK_VALUE), 8);
   JDec(o, "contract_size", SymbolInfoDouble(symbol, SYMBOL_TRADE_CONTRACT_SIZE), 2);
   JDec(o, "volume_min", SymbolInfoDouble(symbol, SYMBOL_VOLUME_MIN), vd);
   JDec(o, "volume_max", SymbolInfoDouble(symbol, SYMBOL_VOLUME_MAX), vd);
   JDec(o, "volume_step", SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP), vd);
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
   for(int i = 0; i < g_posCount; i++)
     {
      string element = Json_position(i);
      if(StringLen(element) > 0)
         JPush(positions, element);
     }
   positions += "]";
   string orders = "[";
   for(int i = 0; i < g_ordCount; i++)
     {
      string element = Json_order(i);
      if(StringLen(element) > 0)
         JPush(orders, element);
     }
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
   bool tradeAllowed = TerminalInfoInteger(TERMINAL_TRADE_ALLOWED) != 0 && MQLInfoInteger(MQL_TRADE_ALLOWED) != 0;
   string j = FrameBegin("snapshot");
   JInt(j, "sync", sync);
   JInt(j, "time_msc", NowMsc());
   JDec(j, "balance", AccountInfoDouble(ACCOUNT_BALANCE), 2);
   JDec(j, "equity", AccountInfoDouble(ACCOUNT_EQUITY), 2);
   JDec(j, "margin", AccountInfoDouble(ACCOUNT_MARGIN), 2);
   JBool(j, "trade_allowed", tradeAllowed);
   JRaw(j, "positions", positions);
   JRaw(j, "orders", orders);
   JRaw(j, "symbols", symbols);
   JRaw(j, "done", done);
   LinkSend(JClose(j));
  }

void Send_deal(const long position, const FoundDeal &d, const string symbol, const string side, const string entry,
               const double volume, const double sl, const double tp, const double posPrice)
  {
   int digits = Digits_(symbol);
   string j = FrameBegin("deal");
   JInt(j, "position", position);
   JInt(j, "new_ticket", 0);
   JInt(j, "order", (long)d.order);
   JInt(j, "deal", (long)d.deal);
   JStr(j, "symbol", symbol);
   JStr(j, "side", side);
   JStr(j, "entry", entry);
   JDec(j, "volume", volume, VolDigits(symbol));
   JDec(j, "price", d.price, digits);
   JDec(j, "profit", entry == "out" ? d.profit : 0.0, 2);
   JLevel(j, "sl", sl, digits);
   JLevel(j, "tp", tp, digits);
   JLevel(j, "pos_price", posPrice, digits);
   JStr(j, "cid", CidOf(d.order, d.comment));
   JStr(j, "reason", ReasonName(d.reason));
   JInt(j, "time_msc", d.timeMsc);
   LinkSend(JClose(j));
  }

void Send_sltp(const ulong ticket, const string symbol, const double sl, const double tp)
  {
   int digits = Digits_(symbol);
   string j = FrameBegin("sltp");
   JInt(j, "position", (long)ticket);
   JStr(j, "symbol", symbol);
   JLevel(j, "sl", sl, digits);
   JLevel(j, "tp", tp, digits);
   JInt(j, "time_msc", NowMsc());
   LinkSend(JClose(j));
  }

void Send_pending_add(const ulong ticket)
  {
   if(!OrderSelect(ticket))
      return;
   string symbol = OrderGetString(ORDER_SYMBOL);
   int digits = Digits_(symbol);
   string comment = OrderGetString(ORDER_COMMENT);
   string j = FrameBegin("pending_add");
   JInt(j, "ticket", (long)ticket);
   JStr(j, "symbol", symbol);
   JStr(j, "order_type", PendingTypeName(OrderGetInteger(ORDER_TYPE)));
   JDec(j, "volume", OrderGetDouble(ORDER_VOLUME_CURRENT), VolDigits(symbol));
   JDec(j, "price", OrderGetDouble(ORDER_PRICE_OPEN), digits);
   JLevel(j, "sl", OrderGetDouble(ORDER_SL), digits);
   JLevel(j, "tp", OrderGetDouble(ORDER_TP), digits);
   JStr(j, "cid", CidOf(ticket, comment));
   JInt(j, "expiration", OrderGetInteger(ORDER_TIME_EXPIRATION) * 1000);
   JInt(j, "time_msc", NowMsc());
   LinkSend(JClose(j));
  }

void Send_pending_del(const ulong ticket, const string state, const string cid)
  {
   string j = FrameBegin("pending_del");
   JInt(j, "ticket", (long)ticket);
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

void Send_quote(const string symbol, const MqlTick &tick)
  {
   int digits = Digits_(symbol);
   string j = FrameBegin("quote");
   JStr(j, "symbol", symbol);
   JDec(j, "bid", tick.bid, digits);
   JDec(j, "ask", tick.ask, digits);
   JInt(j, "time_msc", tick.time_msc);
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
   bool tradeAllowed = TerminalInfoInteger(TERMINAL_TRADE_ALLOWED) != 0 && MQLInfoInteger(MQL_TRADE_ALLOWED) != 0;
   string j = FrameBegin("pong");
   JInt(j, "t", t);
   JBool(j, "connected", TerminalInfoInteger(TERMINAL_CONNECTED) != 0);
   JBool(j, "trade_allowed", tradeAllowed);
   LinkSend(JClose(j));
  }

//+------------------------------------------------------------------+
//| Detecting trades: the terminal's positions and orders are        |
//| compared with what was reported, and every new deal of a changed |
//| position is reported from the history, in order.                 |
//|                                                                  |
//| OnTradeTransaction only triggers a scan: a transaction can be    |
//| delivered after OnTimer has already seen the state it produced,  |
//| so reporting from transactions and snapshotting from the state   |
//| could disagree. Reporting from the diff keeps events and         |
//| snapshots one story.                                             |
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

//--- the deals of a position after `after`, oldest first; false when the history cannot be read
bool NewDeals(const long identifier, const ulong after, FoundDeal &found[], int &count)
  {
   count = 0;
   ArrayResize(found, 0);
   if(!HistorySelectByPosition(identifier))
      return false;
   int total = HistoryDealsTotal();
   for(int i = 0; i < total; i++)
     {
      ulong deal = HistoryDealGetTicket(i);
      if(deal == 0 || deal <= after)
         continue;
      long type = HistoryDealGetInteger(deal, DEAL_TYPE);
      if(type != DEAL_TYPE_BUY && type != DEAL_TYPE_SELL)
         continue;
      ArrayResize(found, count + 1);
      found[count].deal = deal;
      found[count].order = (ulong)HistoryDealGetInteger(deal, DEAL_ORDER);
      found[count].type = type;
      found[count].entry = HistoryDealGetInteger(deal, DEAL_ENTRY);
      found[count].volume = HistoryDealGetDouble(deal, DEAL_VOLUME);
      found[count].price = HistoryDealGetDouble(deal, DEAL_PRICE);
      found[count].profit = HistoryDealGetDouble(deal, DEAL_PROFIT) + HistoryDealGetDouble(deal, DEAL_SWAP)
                            + HistoryDealGetDouble(deal, DEAL_COMMISSION);
      found[count].timeMsc = HistoryDealGetInteger(deal, DEAL_TIME_MSC);
      found[count].reason = HistoryDealGetInteger(deal, DEAL_REASON);
      found[count].comment = HistoryDealGetString(deal, DEAL_COMMENT);
      count++;
     }
   return true;
  }

//--- reports the new deals of one position; false (nothing sent, state kept) while the history lags behind
bool ReportDeals(KnownPosition &k, const bool open, const long nowType, const double nowVolume, const double nowSl,
                 const double nowTp, const double nowPrice, const bool report)
  {
   FoundDeal found[];
   int count = 0;
   if(!NewDeals(k.identifier, k.lastDeal, found, count))
      return false;
   // Replay the deals on the volume reported so far; they must arrive at what the terminal shows.
   double volume = k.volume;
   long type = k.type;
   for(int i = 0; i < count; i++)
     {
      if(found[i].entry == DEAL_ENTRY_IN)
        {
         if(volume <= 0.0)
            type = found[i].type;
         volume += found[i].volume;
        }
      else if(found[i].entry == DEAL_ENTRY_INOUT)
        {
         double rest = found[i].volume - volume;
         type = found[i].type;
         volume = rest;
        }
      else
         volume -= found[i].volume;
     }
   double expected = open ? nowVolume : 0.0;
   if(MathAbs(volume - expected) > 1e-8 || (open && type != nowType))
      return false;
   if(report)
     {
      volume = k.volume;
      for(int i = 0; i < count; i++)
        {
         string side = SideOf(found[i].type);
         if(found[i].entry == DEAL_ENTRY_IN)
           {
            volume += found[i].volume;
            Send_deal((long)k.ticket, found[i], k.symbol, side, "in", found[i].volume, nowSl, nowTp, open ? nowPrice : 0.0);
           }
         else if(found[i].entry == DEAL_ENTRY_INOUT)
           {
            // A netting reversal: the old position closes, the new one opens, under one ticket.
            double closing = volume;
            double opening = found[i].volume - volume;
            Send_deal((long)k.ticket, found[i], k.symbol, side, "out", closing, 0.0, 0.0, 0.0);
            Send_deal((long)k.ticket, found[i], k.symbol, side, "in", opening, nowSl, nowTp, open ? nowPrice : 0.0);
            volume = opening;
           }
         else
           {
            volume -= found[i].volume;
            Send_deal((long)k.ticket, found[i], k.symbol, side, "out", found[i].volume, nowSl, nowTp, 0.0);
           }
        }
     }
   if(count > 0)
      k.lastDeal = found[count - 1].deal;
   k.volume = open ? nowVolume : 0.0;
   k.type = nowType;
   return true;
  }

void ScanPositions(const bool report)
  {
   int total = PositionsTotal();
   int seen[];   // 1 for a known position still open
   ArrayResize(seen, g_posCount);
   if(g_posCount > 0)
      ArrayInitialize(seen, 0);
   for(int i = 0; i < total; i++)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket == 0)
         continue;
      string symbol = PositionGetString(POSITION_SYMBOL);
      long type = PositionGetInteger(POSITION_TYPE);
      double volume = PositionGetDouble(POSITION_VOLUME);
      double sl = PositionGetDouble(POSITION_SL);
      double tp = PositionGetDouble(POSITION_TP);
      double price = PositionGetDouble(POSITION_PRICE_OPEN);
      long identifier = PositionGetInteger(POSITION_IDENTIFIER);
      int k = FindPos(ticket);
      if(k < 0)
        {
         KnownPosition fresh;
         fresh.ticket = ticket;
         fresh.identifier = identifier;
         fresh.symbol = symbol;
         fresh.type = type;
         fresh.volume = 0.0;
         fresh.sl = sl;
         fresh.tp = tp;
         fresh.lastDeal = 0;
         if(!report)
           {
            // Taken in silently (the snapshot shows it): start after its deals so far.
            FoundDeal found[];
            int count = 0;
            if(NewDeals(identifier, 0, found, count) && count > 0)
               fresh.lastDeal = found[count - 1].deal;
            fresh.volume = volume;
           }
         else if(!ReportDeals(fresh, true, type, volume, sl, tp, price, true))
            continue;   // history not there yet: next scan
         ArrayResize(g_pos, g_posCount + 1);
         ArrayResize(seen, g_posCount + 1);
         g_pos[g_posCount] = fresh;
         seen[g_posCount] = 1;
         g_posCount++;
         continue;
        }
      seen[k] = 1;
      if(MathAbs(g_pos[k].volume - volume) > 1e-8 || g_pos[k].type != type)
        {
         if(!ReportDeals(g_pos[k], true, type, volume, sl, tp, price, report))
            continue;
         g_pos[k].sl = sl;
         g_pos[k].tp = tp;
         continue;
        }
      if(MathAbs(g_pos[k].sl - sl) > 1e-10 || MathAbs(g_pos[k].tp - tp) > 1e-10)
        {
         if(report)
            Send_sltp(ticket, symbol, sl, tp);
         g_pos[k].sl = sl;
         g_pos[k].tp = tp;
        }
     }
   // Positions no longer open: their closing deals.
   for(int i = g_posCount - 1; i >= 0; i--)
     {
      if(seen[i] != 0)
         continue;
      if(report && !ReportDeals(g_pos[i], false, g_pos[i].type, 0.0, 0.0, 0.0, 0.0, true))
         continue;   // the closing deal is not in the history yet
      for(int m = i + 1; m < g_posCount; m++)
        {
         g_pos[m - 1] = g_pos[m];
         seen[m - 1] = seen[m];
        }
      g_posCount--;
      ArrayResize(g_pos, g_posCount);
     }
  }

void ScanOrders(const bool report)
  {
   int total = OrdersTotal();
   int seen[];   // 1 for a known order still pending
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
      int k = FindOrd(ticket);
      if(k >= 0)
        {
         seen[k] = 1;
         continue;
        }
      KnownOrder fresh;
      fresh.ticket = ticket;
      fresh.symbol = OrderGetString(ORDER_SYMBOL);
      fresh.type = type;
      fresh.volume = OrderGetDouble(ORDER_VOLUME_CURRENT);
      fresh.price = OrderGetDouble(ORDER_PRICE_OPEN);
      fresh.sl = OrderGetDouble(ORDER_SL);
      fresh.tp = OrderGetDouble(ORDER_TP);
      if(report)
         Send_pending_add(ticket);
      ArrayResize(g_ord, g_ordCount + 1);
      ArrayResize(seen, g_ordCount + 1);
      g_ord[g_ordCount] = fresh;
      seen[g_ordCount] = 1;
      g_ordCount++;
     }
   for(int i = g_ordCount - 1; i >= 0; i--)
     {
      if(seen[i] != 0)
         continue;
      ulong ticket = g_ord[i].ticket;
      if(report && HistoryOrderSelect(ticket))
        {
         long state = HistoryOrderGetInteger(ticket, ORDER_STATE);
         string cid = CidOf(ticket, HistoryOrderGetString(ticket, ORDER_COMMENT));
         // A filled order shows up as its position's deal.
         if(state == ORDER_STATE_EXPIRED)
            Send_pending_del(ticket, "expired", cid);
         else if(state != ORDER_STATE_FILLED && state != ORDER_STATE_PARTIAL)
            Send_pending_del(ticket, "cancelled", cid);
        }
      for(int m = i + 1; m < g_ordCount; m++)
        {
         g_ord[m - 1] = g_ord[m];
         seen[m - 1] = seen[m];
        }
      g_ordCount--;
      ArrayResize(g_ord, g_ordCount);
     }
  }

void Scan(const bool report)
  {
   ScanOrders(report);
   ScanPositions(report);
  }

//+------------------------------------------------------------------+
//| Commands                                                         |
//+------------------------------------------------------------------+
bool VolumeOk(const string symbol, const double volume)
  {
   double min = SymbolInfoDouble(symbol, SYMBOL_VOLUME_MIN);
   double max = SymbolInfoDouble(symbol, SYMBOL_VOLUME_MAX);
   double step = SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP);
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

//--- a filling mode the symbol allows, preferring what the time in force asks for
ENUM_ORDER_TYPE_FILLING FillingFor(const string symbol, const string tif)
  {
   long modes = SymbolInfoInteger(symbol, SYMBOL_FILLING_MODE);
   bool fok = (modes & SYMBOL_FILLING_FOK) != 0;
   bool ioc = (modes & SYMBOL_FILLING_IOC) != 0;
   if(tif == "fok" && fok)
      return ORDER_FILLING_FOK;
   if(tif == "ioc" && ioc)
      return ORDER_FILLING_IOC;
   if(ioc)
      return ORDER_FILLING_IOC;
   if(fok)
      return ORDER_FILLING_FOK;
   return ORDER_FILLING_RETURN;
  }

//--- OrderSend, again with a fresh price after a requote
bool SendOrder(MqlTradeRequest &request, MqlTradeResult &result)
  {
   for(int attempt = 0; attempt < 3; attempt++)
     {
      ZeroMemory(result);
      ResetLastError();
      bool sent = OrderSend(request, result);
      if(result.retcode == TRADE_RETCODE_REQUOTE || result.retcode == TRADE_RETCODE_PRICE_CHANGED
         || result.retcode == TRADE_RETCODE_PRICE_OFF)
        {
         if(request.action == TRADE_ACTION_DEAL)
           {
            bool buy = request.type == ORDER_TYPE_BUY;
            request.price = SymbolInfoDouble(request.symbol, buy ? SYMBOL_ASK : SYMBOL_BID);
            continue;
           }
        }
      return sent;
     }
   return false;
  }

long RetcodeOf(const MqlTradeResult &result)
  {
   return result.retcode != 0 ? (long)result.retcode : (long)GetLastError();
  }

bool Succeeded(const MqlTradeResult &result)
  {
   return result.retcode == TRADE_RETCODE_DONE || result.retcode == TRADE_RETCODE_DONE_PARTIAL
          || result.retcode == TRADE_RETCODE_PLACED;
  }

//--- an open position, pending order or deal in the history carrying Mirror's id (when the journal lost it)
bool FindById(const string cid, long &order, long &position, string &price, string &volume)
  {
   for(int i = PositionsTotal() - 1; i >= 0; i--)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket != 0 && PositionGetString(POSITION_COMMENT) == cid && (ulong)PositionGetInteger(POSITION_MAGIC) == MagicNumber)
        {
         string symbol = PositionGetString(POSITION_SYMBOL);
         order = (long)ticket;
         position = (long)ticket;
         price = DoubleToString(PositionGetDouble(POSITION_PRICE_OPEN), Digits_(symbol));
         volume = DoubleToString(PositionGetDouble(POSITION_VOLUME), VolDigits(symbol));
         return true;
        }
     }
   for(int i = OrdersTotal() - 1; i >= 0; i--)
     {
      ulong ticket = OrderGetTicket(i);
      if(ticket != 0 && OrderGetString(ORDER_COMMENT) == cid && (ulong)OrderGetInteger(ORDER_MAGIC) == MagicNumber)
        {
         order = (long)ticket;
         position = 0;
         price = "";
         volume = "";
         return true;
        }
     }
   if(!HistorySelect(TimeCurrent() - HistoryDays * 86400, TimeCurrent() + 86400))
      return false;
   for(int i = HistoryDealsTotal() - 1; i >= 0; i--)
     {
      ulong deal = HistoryDealGetTicket(i);
      if(deal == 0 || HistoryDealGetString(deal, DEAL_COMMENT) != cid || (ulong)HistoryDealGetInteger(deal, DEAL_MAGIC) != MagicNumber)
         continue;
      string symbol = HistoryDealGetString(deal, DEAL_SYMBOL);
      order = HistoryDealGetInteger(deal, DEAL_ORDER);
      position = HistoryDealGetInteger(deal, DEAL_POSITION_ID);
      price = DoubleToString(HistoryDealGetDouble(deal, DEAL_PRICE), Digits_(symbol));
      volume = DoubleToString(HistoryDealGetDouble(deal, DEAL_VOLUME), VolDigits(symbol));
      return true;
     }
   return false;
  }

//--- answers an executed command and journals it
void Executed(const MirrorCmd &c, const long retcode, const string message, const long order, const long position,
              const string price, const string volume)
  {
   JournalAdd(c.cmd, c.cid, order, position, price, volume);
   RememberOrderCid((ulong)order, c.cid);
   Send_ack(c.cmd, true, retcode, message, order, position, price, volume, false);
  }

void Refused(const MirrorCmd &c, const long retcode, const string message)
  {
   Send_ack(c.cmd, false, retcode, message, 0, 0, "", "", false);
  }

//--- the position a deal belongs to
long PositionOfDeal(const ulong deal)
  {
   if(deal == 0 || !HistoryDealSelect(deal))
      return 0;
   return HistoryDealGetInteger(deal, DEAL_POSITION_ID);
  }

void DoOpen(const MirrorCmd &c)
  {
   if(!SymbolSelect(c.symbol, true))
     {
      Refused(c, 4301, "unknown symbol " + c.symbol);
      return;
     }
   int digits = Digits_(c.symbol);
   double volume = StringToDouble(c.volume);
   if(!VolumeOk(c.symbol, volume))
     {
      Refused(c, TRADE_RETCODE_INVALID_VOLUME, "volume " + c.volume + " is off the symbol's step, minimum or maximum");
      return;
     }
   bool buy = c.side == "buy";
   MqlTradeRequest request;
   MqlTradeResult result;
   ZeroMemory(request);
   ZeroMemory(result);
   request.symbol = c.symbol;
   request.volume = volume;
   request.magic = MagicNumber;
   request.comment = c.cid;
   request.deviation = (ulong)c.deviation;
   request.sl = Level(c.sl, digits);
   request.tp = Level(c.tp, digits);
   if(c.orderType == "market")
     {
      request.action = TRADE_ACTION_DEAL;
      request.type = buy ? ORDER_TYPE_BUY : ORDER_TYPE_SELL;
      request.price = SymbolInfoDouble(c.symbol, buy ? SYMBOL_ASK : SYMBOL_BID);
      request.type_filling = FillingFor(c.symbol, c.tif);
     }
   else
     {
      request.action = TRADE_ACTION_PENDING;
      if(c.orderType == "limit")
         request.type = buy ? ORDER_TYPE_BUY_LIMIT : ORDER_TYPE_SELL_LIMIT;
      else
         request.type = buy ? ORDER_TYPE_BUY_STOP : ORDER_TYPE_SELL_STOP;
      request.price = Level(c.price, digits);
      request.type_filling = ORDER_FILLING_RETURN;
      request.type_time = ORDER_TIME_GTC;
      if(c.tif == "day")
         request.type_time = ORDER_TIME_DAY;
      if(c.tif == "gtd" && c.expiration > 0)
        {
         request.type_time = ORDER_TIME_SPECIFIED;
         request.expiration = (datetime)(c.expiration / 1000);
        }
     }
   SendOrder(request, result);
   if(Succeeded(result))
     {
      bool filled = result.retcode != TRADE_RETCODE_PLACED;
      long position = filled ? PositionOfDeal(result.deal) : 0;
      string price = filled ? DoubleToString(result.price, digits) : "";
      string executed = filled ? DoubleToString(result.volume, VolDigits(c.symbol)) : "";
      Executed(c, result.retcode, result.comment, (long)result.order, position, price, executed);
      return;
     }
   if(result.retcode == TRADE_RETCODE_TIMEOUT)
     {
      // The outcome is unknown to the terminal too: look for the order before saying no.
      long order = 0, position = 0;
      string price = "", executed = "";
      if(FindById(c.cid, order, position, price, executed))
        {
         Executed(c, TRADE_RETCODE_DONE, "found after a timeout", order, position, price, executed);
         return;
        }
     }
   Refused(c, RetcodeOf(result), result.comment);
  }

void DoClose(const MirrorCmd &c)
  {
   ulong ticket = (ulong)c.position;
   if(!PositionSelectByTicket(ticket))
     {
      Refused(c, 4753, "no open position " + IntegerToString(c.position));
      return;
     }
   string symbol = PositionGetString(POSITION_SYMBOL);
   long type = PositionGetInteger(POSITION_TYPE);
   double open = PositionGetDouble(POSITION_VOLUME);
   double volume = StringToDouble(c.volume);
   bool whole = MathAbs(volume - open) < 1e-8;
   if(volume <= 0.0 || volume > open + 1e-8 || (!whole && !VolumeOk(symbol, volume)))
     {
      Refused(c, TRADE_RETCODE_INVALID_VOLUME, "cannot close " + c.volume + " of " + DoubleToString(open, VolDigits(symbol)));
      return;
     }
   bool closingBuy = type == POSITION_TYPE_BUY;
   MqlTradeRequest request;
   MqlTradeResult result;
   ZeroMemory(request);
   ZeroMemory(result);
   request.action = TRADE_ACTION_DEAL;
   request.symbol = symbol;
   request.volume = whole ? open : volume;
   request.type = closingBuy ? ORDER_TYPE_SELL : ORDER_TYPE_BUY;
   request.price = SymbolInfoDouble(symbol, closingBuy ? SYMBOL_BID : SYMBOL_ASK);
   request.magic = MagicNumber;
   request.comment = c.cid;
   request.deviation = (ulong)c.deviation;
   request.type_filling = FillingFor(symbol, c.tif);
   // On a hedging account the position is named; on netting an opposite deal reduces it.
   if(AccountInfoInteger(ACCOUNT_MARGIN_MODE) == ACCOUNT_MARGIN_MODE_RETAIL_HEDGING)
      request.position = ticket;
   SendOrder(request, result);
   if(Succeeded(result))
     {
      Executed(c, result.retcode, result.comment, (long)result.order, (long)ticket, DoubleToString(result.price, Digits_(symbol)),
               DoubleToString(result.volume, VolDigits(symbol)));
      return;
     }
   Refused(c, RetcodeOf(result), result.comment);
  }

void DoModify(const MirrorCmd &c)
  {
   ulong ticket = (ulong)c.position;
   if(!PositionSelectByTicket(ticket))
     {
      Refused(c, 4753, "no open position " + IntegerToString(c.position));
      return;
     }
   string symbol = PositionGetString(POSITION_SYMBOL);
   int digits = Digits_(symbol);
   MqlTradeRequest request;
   MqlTradeResult result;
   ZeroMemory(request);
   ZeroMemory(result);
   request.action = TRADE_ACTION_SLTP;
   request.position = ticket;
   request.symbol = symbol;
   request.sl = Level(c.sl, digits);
   request.tp = Level(c.tp, digits);
   request.magic = MagicNumber;
   SendOrder(request, result);
   if(Succeeded(result) || result.retcode == TRADE_RETCODE_NO_CHANGES)
     {
      Send_ack(c.cmd, true, result.retcode, result.comment, 0, (long)ticket, "", "", false);
      return;
     }
   Refused(c, RetcodeOf(result), result.comment);
  }

void DoCancel(const MirrorCmd &c)
  {
   ulong ticket = (ulong)c.order;
   if(ticket == 0 || !OrderSelect(ticket))
     {
      ticket = 0;
      for(int i = OrdersTotal() - 1; i >= 0; i--)
        {
         ulong candidate = OrderGetTicket(i);
         if(candidate != 0 && StringLen(c.cid) > 0 && OrderGetString(ORDER_COMMENT) == c.cid)
            ticket = candidate;
        }
     }
   if(ticket == 0)
     {
      Refused(c, 4754, "no pending order " + c.cid);
      return;
     }
   MqlTradeRequest request;
   MqlTradeResult result;
   ZeroMemory(request);
   ZeroMemory(result);
   request.action = TRADE_ACTION_REMOVE;
   request.order = ticket;
   SendOrder(request, result);
   if(Succeeded(result))
     {
      Send_ack(c.cmd, true, result.retcode, result.comment, (long)ticket, 0, "", "", false);
      return;
     }
   Refused(c, RetcodeOf(result), result.comment);
  }

void Execute(const MirrorCmd &c)
  {
   bool trade = c.op == "open" || c.op == "close";
   // Executed before (an ack lost with the connection, or the engine resending)? Answer from
   // the journal, or from the terminal itself if the journal lost it, and do nothing.
   int j = JournalFind(c.cmd, trade ? c.cid : "");
   if(j >= 0)
     {
      Send_ack(c.cmd, true, TRADE_RETCODE_DONE, "already executed", g_journal[j].order, g_journal[j].position,
               g_journal[j].price, g_journal[j].volume, true);
      return;
     }
   if(c.op == "open")
     {
      long order = 0, position = 0;
      string price = "", volume = "";
      if(StringLen(c.cid) > 0 && FindById(c.cid, order, position, price, volume))
        {
         JournalAdd(c.cmd, c.cid, order, position, price, volume);
         Send_ack(c.cmd, true, TRADE_RETCODE_DONE, "already executed", order, position, price, volume, true);
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
   // The deals it caused follow the ack (if the terminal shows them yet; else the next scan).
   Scan(true);
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
   g_posCount = 0;
   ArrayResize(g_pos, 0);
   g_ordCount = 0;
   ArrayResize(g_ord, 0);
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
   ArrayResize(g_subLastMsc, count);
   for(int i = 0; i < count; i++)
     {
      SymbolSelect(g_subs[i], true);
      g_subLastMsc[i] = 0;   // a quote for each at once
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
   string balance = DoubleToString(AccountInfoDouble(ACCOUNT_BALANCE), 2);
   string equity = DoubleToString(AccountInfoDouble(ACCOUNT_EQUITY), 2);
   string margin = DoubleToString(AccountInfoDouble(ACCOUNT_MARGIN), 2);
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
      MqlTick tick;
      if(!SymbolInfoTick(g_subs[i], tick) || tick.time_msc == g_subLastMsc[i])
         continue;
      g_subLastMsc[i] = tick.time_msc;
      Send_quote(g_subs[i], tick);
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
   JournalLoad(AccountInfoInteger(ACCOUNT_LOGIN));
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

void OnTradeTransaction(const MqlTradeTransaction &trans, const MqlTradeRequest &request, const MqlTradeResult &result)
  {
   // A trigger only: the scan reports what changed (see the note above Scan).
   if(g_synced && LinkIsOpen())
      Scan(true);
  }
//+------------------------------------------------------------------+
