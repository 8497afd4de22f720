//+------------------------------------------------------------------+
//| MirrorBridge/Journal.mqh                                         |
//| The EA's journal of executed commands: the record that makes a   |
//| command sent twice (after a lost ack, or by an engine resending  |
//| its order) execute once. Kept in MQL4/Files or MQL5/Files so it  |
//| survives a terminal restart, and sent in every snapshot ("done") |
//| so that the bridge learns what happened while it was cut off.    |
//| Only executions are journaled: a refused command may be retried. |
//| MQL4 and MQL5.                                                   |
//+------------------------------------------------------------------+
#ifdef __MQL4__
#property strict
#endif

#define MIRROR_JOURNAL_KEPT 256   // entries kept in memory and on disk
#define MIRROR_JOURNAL_SENT 64    // entries sent in a snapshot

struct MirrorDone
  {
   long              cmd;
   string            cid;
   long              order;
   long              position;
   string            price;    // decimal text, "" when nothing executed
   string            volume;   // decimal text, "" when nothing executed
  };

MirrorDone g_journal[];
int        g_journalCount = 0;
string     g_journalFile  = "";

void JournalRemember(const MirrorDone &entry)
  {
   if(g_journalCount >= MIRROR_JOURNAL_KEPT)
     {
      for(int i = 1; i < g_journalCount; i++)
         g_journal[i - 1] = g_journal[i];
      g_journalCount--;
     }
   ArrayResize(g_journal, g_journalCount + 1);
   g_journal[g_journalCount] = entry;
   g_journalCount++;
  }

//--- rewrites the file with what is kept (run at start, so the file never grows without bound)
void JournalRewrite()
  {
   int h = FileOpen(g_journalFile, FILE_WRITE | FILE_CSV | FILE_ANSI, ';');
   if(h == INVALID_HANDLE)
     {
      Print("Mirror: cannot write the journal ", g_journalFile, ", error ", GetLastError());
      return;
     }
   for(int i = 0; i < g_journalCount; i++)
      FileWrite(h, IntegerToString(g_journal[i].cmd), g_journal[i].cid, IntegerToString(g_journal[i].order),
                IntegerToString(g_journal[i].position), g_journal[i].price, g_journal[i].volume);
   FileClose(h);
  }

void JournalLoad(const long login)
  {
   g_journalFile = "MirrorBridge\\journal_" + IntegerToString(login) + ".csv";
   g_journalCount = 0;
   ArrayResize(g_journal, 0);
   int h = FileOpen(g_journalFile, FILE_READ | FILE_CSV | FILE_ANSI | FILE_SHARE_READ, ';');
   if(h == INVALID_HANDLE)
      return;   // no journal yet
   while(!FileIsEnding(h))
     {
      MirrorDone entry;
      entry.cmd = StringToInteger(FileReadString(h));
      entry.cid = FileReadString(h);
      entry.order = StringToInteger(FileReadString(h));
      entry.position = StringToInteger(FileReadString(h));
      entry.price = FileReadString(h);
      entry.volume = FileReadString(h);
      if(entry.cmd != 0)
         JournalRemember(entry);
     }
   FileClose(h);
   JournalRewrite();
  }

void JournalAdd(const long cmd, const string cid, const long order, const long position, const string price,
                const string volume)
  {
   MirrorDone entry;
   entry.cmd = cmd;
   entry.cid = cid;
   entry.order = order;
   entry.position = position;
   entry.price = price;
   entry.volume = volume;
   JournalRemember(entry);
   int h = FileOpen(g_journalFile, FILE_READ | FILE_WRITE | FILE_CSV | FILE_ANSI, ';');
   if(h == INVALID_HANDLE)
     {
      Print("Mirror: cannot append to the journal ", g_journalFile, ", error ", GetLastError());
      return;
     }
   FileSeek(h, 0, SEEK_END);
   FileWrite(h, IntegerToString(cmd), cid, IntegerToString(order), IntegerToString(position), price, volume);
   FileClose(h);
  }

//--- the entry for a command id, or for a client id (opens and closes); -1 if none
int JournalFind(const long cmd, const string cid)
  {
   for(int i = g_journalCount - 1; i >= 0; i--)
     {
      if(g_journal[i].cmd == cmd)
         return i;
      if(StringLen(cid) > 0 && g_journal[i].cid == cid)
         return i;
     }
   return -1;
  }
//+------------------------------------------------------------------+
